/**
 * EventStoreDB $all positions as the opaque strings clients see:
 * "<commit>/<prepare>", both unsigned 64-bit decimals. A string this store
 * could not have issued is an InvalidPositionError.
 */
import { InvalidPositionError } from "./event-store.js";

export interface EsdbPosition {
  commit: bigint;
  prepare: bigint;
}

const MAX_U64 = (1n << 64n) - 1n;
const POSITION = /^(0|[1-9][0-9]{0,19})\/(0|[1-9][0-9]{0,19})$/;

export function encodePosition(position: EsdbPosition): string {
  return `${position.commit}/${position.prepare}`;
}

export function decodePosition(text: string): EsdbPosition {
  const match = POSITION.exec(text);
  if (!match) throw new InvalidPositionError(text);
  const commit = BigInt(match[1]!);
  const prepare = BigInt(match[2]!);
  // The prepare record of an event never lies after its commit record.
  if (commit > MAX_U64 || prepare > MAX_U64 || prepare > commit) throw new InvalidPositionError(text);
  return { commit, prepare };
}
