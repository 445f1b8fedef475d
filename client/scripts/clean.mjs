// Empties dist/ so a package is packed from a fresh build only, never with files of an older one.
import { rmSync } from "node:fs";

rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
