// dist/cjs holds the CommonJS build; inside a "type": "module" package its
// .js files must be marked as CommonJS by a package.json of their own.
import { writeFileSync } from "node:fs";

writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), `${JSON.stringify({ type: "commonjs" }, null, 2)}\n`);
