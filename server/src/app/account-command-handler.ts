/**
 * Account commands and reads for the gRPC layer: the command runtime over the
 * Account aggregate (see command-runtime.ts for how commands are handled).
 */
import type { AccountCommand, AccountEvent, AccountState, CommandRejection, ExistingAccount } from "../domain/account.js";
import type { EventStore } from "../store/event-store.js";
import { ValidationError } from "../domain/errors.js";
import { accountAggregate } from "./account-aggregate.js";
import { CommandRuntime, type CommandContext, type CommandHandlerOptions, type Loaded } from "./command-runtime.js";

export type { CommandContext, CommandHandlerOptions } from "./command-runtime.js";

/** Command ids of transfer steps: `transfer:<transfer id>:<step>`. */
export const TRANSFER_STEP_PREFIX = "transfer:";

export interface AccountSnapshot {
  account: ExistingAccount;
  /** Stream revision of the last event folded into `account`. */
  revision: bigint;
}

export class AccountCommandHandler {
  private readonly runtime: CommandRuntime<AccountCommand, AccountEvent, AccountState, CommandRejection>;

  private readonly hooks: CommandHandlerOptions["hooks"];

  constructor(store: EventStore, options: CommandHandlerOptions = {}) {
    this.runtime = new CommandRuntime(accountAggregate, store, options);
    this.hooks = options.hooks;
  }

  /** A client's command. Command ids starting with "transfer:" are the transfer steps' own. */
  execute(command: AccountCommand, context: CommandContext): Promise<AccountSnapshot> {
    if (context.commandId.startsWith(TRANSFER_STEP_PREFIX)) {
      return Promise.reject(new ValidationError("INVALID_COMMAND_ID", "command_id", `command ids starting with "${TRANSFER_STEP_PREFIX}" are reserved for transfer steps`));
    }
    return this.run(command, context);
  }

  /** A step of a transfer (transfer-process.ts), under its own command id. */
  step(command: AccountCommand, context: CommandContext): Promise<AccountSnapshot> {
    if (!context.commandId.startsWith(TRANSFER_STEP_PREFIX)) return Promise.reject(new Error(`not a transfer step: ${context.commandId}`));
    return this.run(command, context);
  }

  /** Runs the command; its answer is told to the hooks (command outcomes by reason). */
  private async run(command: AccountCommand, context: CommandContext): Promise<AccountSnapshot> {
    let loaded: Loaded<AccountState>;
    try {
      loaded = await this.runtime.execute(command, context);
    } catch (error) {
      this.hooks?.settled?.(command.type, error);
      throw error;
    }
    this.hooks?.settled?.(command.type, undefined);
    return snapshotOf(loaded);
  }

  /** Current state, read through to the store so writes by other processes show (or, with `cached`, as cached). */
  async getAccount(accountId: string, options: { cached?: boolean } = {}): Promise<AccountSnapshot> {
    return snapshotOf(await this.runtime.get(accountId, options));
  }
}

function snapshotOf({ state, revision }: Loaded<AccountState>): AccountSnapshot {
  if (state.status === "none") throw new Error("a command left no account");
  return { account: state, revision };
}
