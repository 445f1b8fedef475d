/**
 * The end-to-end suites with EVENTBANK_STORE=esdb on the three-node double
 * over `esdb+discover://` (the client finds the leader through Gossip), and
 * what a leader change does to the real server between commands.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountServiceClient, SubscribeAccountResponse } from "../../client/src/gen/bank/v1/account_service.js";
import { startEsdbCluster, type EsdbCluster } from "../support/esdb-double/cluster.js";
import { call, connect } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeAccountServiceE2E, waitFor } from "./account-service-suite.js";
import { describeTransferServiceE2E } from "./transfer-service-suite.js";

let cluster: EsdbCluster;
beforeAll(async () => {
  cluster = await startEsdbCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

const onCluster = async () => ({ env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: cluster.connectionString } });
describeAccountServiceE2E("esdb, three-node gRPC double (esdb+discover://)", onCluster);
describeTransferServiceE2E("esdb, three-node gRPC double (esdb+discover://)", onCluster);

describe("AccountService while EventStoreDB leadership moves (three-node gRPC double)", () => {
  let moving: EsdbCluster;
  let server: TestServer;
  let client: AccountServiceClient;
  beforeAll(async () => {
    moving = await startEsdbCluster();
    server = await startTestServer({
      env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: moving.connectionString },
    });
    client = connect(server.address);
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
    await moving?.stop();
  });

  it("answers every command after each move, and a subscription sees each event once", async () => {
    await call(client, client.openAccount, { accountId: "mover", owner: "Ada", currency: "EUR", commandId: "open" });
    const subscription = client.subscribeAccount({ accountId: "mover" });
    const received: SubscribeAccountResponse[] = [];
    subscription.on("data", (message: SubscribeAccountResponse) => received.push(message));
    subscription.on("error", () => undefined);
    try {
      for (let i = 1; i <= 6; i++) {
        // The old leader refuses the next write (not-leader) and ends its subscriptions; nothing of that reaches the caller.
        moving.moveLeader();
        const { account } = await call(client, client.deposit, { accountId: "mover", amount: 10n, commandId: `d${i}` });
        expect(account).toMatchObject({ balance: BigInt(10 * i), revision: BigInt(i) });
      }
      expect((await call(client, client.getAccount, { accountId: "mover" })).account).toMatchObject({ balance: 60n, revision: 6n });
      const revisions = () => received.flatMap((m) => (m.message?.$case === "event" ? [m.message.value.revision] : []));
      await waitFor(() => revisions().length >= 7);
      expect(revisions()).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n]);
      // Deposits, each once, in the store both servers and every node share.
      expect(moving.events.filter((e) => e.stream === "account-mover").map((e) => e.type)).toHaveLength(7);
    } finally {
      subscription.cancel();
    }
  });
});
