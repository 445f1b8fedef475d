/** Limits and input rules of the account domain (docs/design.md, "Account rules"). */
import { ValidationError } from "./errors.js";

/** Largest amount of a single deposit or withdrawal, in minor units. */
export const MAX_AMOUNT = 1_000_000_000_000n;
/** Largest balance: 2^53 - 1, so JSON clients read it exactly. */
export const MAX_BALANCE = BigInt(Number.MAX_SAFE_INTEGER);

const ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const CURRENCY = /^[A-Z]{3}$/;
const MAX_OWNER_LENGTH = 200;
const MAX_COMMAND_ID_LENGTH = 128;

export function validateAccountId(accountId: string, field = "account_id"): string {
  if (!ACCOUNT_ID.test(accountId)) {
    throw new ValidationError(
      "INVALID_ACCOUNT_ID",
      field,
      `${field} must be 1-64 characters of [A-Za-z0-9_-] starting with a letter or digit`,
    );
  }
  return accountId;
}

export function validateAmount(amount: bigint, field = "amount"): bigint {
  if (amount < 1n || amount > MAX_AMOUNT) {
    throw new ValidationError("INVALID_AMOUNT", field, `${field} must be between 1 and ${MAX_AMOUNT} minor units, got ${amount}`);
  }
  return amount;
}

/** ISO 4217 codes known to this runtime's ICU data. */
const KNOWN_CURRENCIES: ReadonlySet<string> = new Set(Intl.supportedValuesOf("currency"));

/** Three upper-case letters naming a known ISO 4217 currency. */
export function validateCurrency(currency: string, field = "currency"): string {
  if (!CURRENCY.test(currency) || !KNOWN_CURRENCIES.has(currency)) {
    throw new ValidationError("INVALID_CURRENCY", field, `${field} must be a known ISO 4217 code of three upper-case letters, got ${JSON.stringify(currency.slice(0, 8))}`);
  }
  return currency;
}

export function validateOwner(owner: string, field = "owner"): string {
  const length = [...owner].length;
  if (owner.trim().length === 0 || length > MAX_OWNER_LENGTH || /\p{Cc}/u.test(owner)) {
    throw new ValidationError(
      "INVALID_OWNER",
      field,
      `${field} must be 1-${MAX_OWNER_LENGTH} characters, not blank, without control characters`,
    );
  }
  return owner;
}

export function validateCommandId(commandId: string, field = "command_id"): string {
  const length = [...commandId].length;
  if (length === 0 || length > MAX_COMMAND_ID_LENGTH || /\p{Cc}/u.test(commandId)) {
    throw new ValidationError(
      "INVALID_COMMAND_ID",
      field,
      `${field} must be 1-${MAX_COMMAND_ID_LENGTH} characters without control characters`,
    );
  }
  return commandId;
}
