// Prints the SHA-256 of an API key, for EVENTBANK_API_KEYS: `npm run hash-api-key -- <token>`.
// With no argument, makes a new random token and prints both.
import { createHash, randomBytes } from "node:crypto";

const token = process.argv[2] ?? randomBytes(32).toString("base64url");
if (!process.argv[2]) console.log(`token:  ${token}`);
console.log(`sha256: ${createHash("sha256").update(token, "utf8").digest("hex")}`);
