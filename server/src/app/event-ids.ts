/**
 * Deterministic event ids: a name-based UUID (version 5, RFC 9562) of the
 * stream, the command id, the event's index within the command and, when
 * given, the command's content and outcome. Appending the same command twice
 * produces the same ids, which the stores deduplicate; the same command id
 * with other content produces other ids, which the stores never mistake for
 * a repeat (EventStoreDB compares ids only).
 */
import { createHash } from "node:crypto";

// A fixed namespace of our own (a random UUID, chosen once).
const NAMESPACE = Buffer.from("0f4b6a1e2c7d4e8f9a3b5c6d7e8f9a0b", "hex");

export function eventIdFor(stream: string, commandId: string, index: number, content = ""): string {
  const name = `${stream}\u0000${commandId}\u0000${index}` + (content === "" ? "" : `\u0000${content}`);
  const hash = createHash("sha1").update(NAMESPACE).update(name).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
