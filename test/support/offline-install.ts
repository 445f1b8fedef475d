/**
 * Installs a packed tarball into a consumer project without the network.
 *
 * `npm install ./x.tgz` must fetch each dependency's registry metadata, which a
 * machine set up by `npm ci` does not have cached (npm ci reads the lockfile
 * instead). So the consumer gets a lockfile too, written from the repository's
 * own: the tarball plus the dependencies it declares, with their versions and
 * integrity hashes, which `npm ci --offline` then takes from npm's cache,
 * where the repository's install left them.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [field: string]: unknown;
}

/** The dependencies a packed package.json declares, e.g. read from the tarball. */
export async function installTarballOffline(options: {
  consumerDir: string;
  tarball: string;
  packageName: string;
  version: string;
  dependencies: Record<string, string>;
  /** The repository's package-lock.json: where the versions and hashes come from. */
  repositoryLock: string;
}): Promise<{ stdout: string; stderr: string }> {
  const { consumerDir, tarball, packageName, version, dependencies } = options;
  const lock = JSON.parse(readFileSync(options.repositoryLock, "utf8")) as { packages: Record<string, LockEntry> };
  const registry = (await run("npm", ["config", "get", "registry"])).stdout.trim().replace(/\/?$/, "/");
  const tarballSpec = `file:${basename(tarball)}`;

  const packages: Record<string, LockEntry> = {
    "": { name: "consumer", version: "1.0.0", dependencies: { [packageName]: tarballSpec } },
    [`node_modules/${packageName}`]: {
      version,
      resolved: tarballSpec,
      integrity: `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`,
      dependencies,
    },
  };
  // Every dependency, transitively, from where the repository's install resolved it (Node's lookup:
  // the requiring package's own node_modules, then each one above it), kept at that same place.
  const pending = Object.keys(dependencies).map((name) => ({ name, from: "" }));
  while (pending.length > 0) {
    const { name, from } = pending.pop()!;
    const location = resolveLocation(lock.packages, name, from);
    if (packages[location]) continue;
    const entry = lock.packages[location]!;
    const unscoped = name.split("/").at(-1)!;
    packages[location] = { ...entry, resolved: entry.resolved ?? `${registry}${name}/-/${unscoped}-${entry.version}.tgz` };
    for (const dependency of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) pending.push({ name: dependency, from: location });
  }

  writeFileSync(join(consumerDir, "package.json"), `${JSON.stringify({ name: "consumer", version: "1.0.0", private: true, dependencies: { [packageName]: tarballSpec } }, null, 2)}\n`);
  writeFileSync(join(consumerDir, "package-lock.json"), `${JSON.stringify({ name: "consumer", version: "1.0.0", lockfileVersion: 3, requires: true, packages }, null, 2)}\n`);
  return run("npm", ["ci", "--offline", "--no-audit", "--no-fund"], { cwd: consumerDir, timeout: 120_000 });
}

function resolveLocation(packages: Record<string, LockEntry>, name: string, from: string): string {
  for (let dir = from; ; dir = dir.replace(/\/?node_modules\/(@[^/]+\/)?[^/]+$/, "")) {
    const location = `${dir ? `${dir}/` : ""}node_modules/${name}`;
    const entry = packages[location];
    if (entry?.version && entry.integrity) return location;
    if (!dir) throw new Error(`${name} (needed by ${from || "the package"}) is not in the repository's package-lock.json; cannot install offline`);
  }
}
