/**
 * A three-node cluster of the EventStoreDB double, for `esdb+discover://`:
 * three gRPC servers on their own ports, each answering Gossip.Read with the
 * same member list (one Leader, the others Follower, each with its HTTP
 * endpoint and alive flag, as EventStoreDB 24.10's Gossip.Read.cs sends it).
 * A follower answers calls that carry `requires-leader: true` with
 * not-leader and the leader's address; others it serves itself (reads) or
 * forwards to the leader (writes), as ClusterVNodeController does.
 *
 * The nodes share ONE in-memory log: a single logical database. The double
 * models the protocol a client sees, not replication: no follower lags, no
 * acknowledged write is lost when leadership moves, no node truncates its
 * log. docs/eventstoredb.md lists what only a real cluster can show.
 *
 * Tests move leadership with `moveLeader()` (elections after the leader
 * resigns or is partitioned away: it stays up as a follower) or stop a node
 * with `stopNode()` (its connections are cut; gossip reports it dead and,
 * if it led, another node leads).
 */
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { InMemoryLog, type StoredEvent } from "./log.js";
import { gossipPb, toUuid } from "./proto.js";
import { startEsdbDouble, type ClusterMembership, type EsdbDouble, type EsdbDoubleOptions } from "./server.js";

export interface EsdbClusterOptions extends Pick<EsdbDoubleOptions, "batchAppend" | "seed" | "writeTimeoutMs" | "maxAppendSize"> {
  /** Number of nodes (default 3). */
  nodes?: number;
}

export interface MoveLeaderOptions {
  /**
   * End the subscription calls the old leader serves, with UNAVAILABLE (default
   * true). Whether a real node drops its catch-up subscriptions when it loses
   * leadership could not be confirmed; a node that restarts does, so the
   * default is the case a client must survive.
   */
  dropSubscriptions?: boolean;
}

export interface EsdbCluster {
  /** `esdb+discover://127.0.0.1:<seed port>?tls=false`: the client finds the leader through gossip. */
  readonly connectionString: string;
  /** A discover connection string seeded at another node (or with other settings appended). */
  connectionStringVia(seed: number, extra?: string): string;
  /** The nodes, each a full double (`connectionString` points at that node alone). */
  readonly nodes: readonly EsdbDouble[];
  /** Index of the node that leads now, or -1 while none does. */
  leader(): number;
  /** Elections: `to` (default: the next alive node) leads, the old leader follows. */
  moveLeader(to?: number, options?: MoveLeaderOptions): void;
  /** The node goes away (connections cut, port closed); if it led, the next alive node leads. */
  stopNode(index: number): Promise<void>;
  /** The node comes back on its port, as a follower. */
  startNode(index: number): Promise<void>;
  readonly log: InMemoryLog;
  /** Everything in `$all` so far, system events included. */
  readonly events: readonly StoredEvent[];
  /** Not-leader answers all nodes gave so far. */
  notLeaderAnswers(): number;
  stop(): Promise<void>;
}

const VNodeState = gossipPb.MemberInfo.VNodeState;
/** EventStoreDB's timestamps: 100 ns ticks since the Unix epoch. */
const TICKS_PER_MS = 10_000n;

export async function startEsdbCluster(options: EsdbClusterOptions = {}): Promise<EsdbCluster> {
  const size = options.nodes ?? 3;
  const log = new InMemoryLog();
  const members = Array.from({ length: size }, () => ({ instanceId: randomUUID(), alive: true, port: 0, changed: Date.now() }));
  let leaderIndex = 0;

  const membership: ClusterMembership = {
    leader: () => (leaderIndex < 0 ? undefined : { host: "127.0.0.1", port: members[leaderIndex]!.port }),
    isLeader: (port) => leaderIndex >= 0 && members[leaderIndex]!.port === port,
    gossip: () =>
      new gossipPb.ClusterInfo().setMembersList(
        members.map((member, index) => {
          // Gossip.Read.cs: Uuid.FromGuid(..).ToDto() (structured), ticks since the epoch, the state, alive, the HTTP endpoint.
          return new gossipPb.MemberInfo()
            .setInstanceId(toUuid(member.instanceId, true))
            .setTimeStamp((BigInt(member.changed) * TICKS_PER_MS).toString())
            .setState(!member.alive ? VNodeState.UNKNOWN : index === leaderIndex ? VNodeState.LEADER : VNodeState.FOLLOWER)
            .setIsAlive(member.alive)
            .setHttpEndPoint(new gossipPb.EndPoint().setAddress("127.0.0.1").setPort(member.port));
        }),
      ),
  };

  const nodes: EsdbDouble[] = [];
  try {
    for (let i = 0; i < size; i++) {
      // The first node writes a fresh node's system events; the log is shared, so once is enough.
      const node = await startEsdbDouble({ ...options, log, cluster: membership, seed: i === 0 && (options.seed ?? true) });
      members[i]!.port = node.port;
      nodes.push(node);
    }
  } catch (error) {
    await Promise.all(nodes.map((node) => node.stop()));
    throw error;
  }

  const nextAlive = (after: number): number => {
    for (let step = 1; step <= size; step++) {
      const candidate = (after + step) % size;
      if (members[candidate]!.alive && candidate !== after) return candidate;
    }
    return -1;
  };
  const lead = (index: number): void => {
    const now = Date.now();
    if (leaderIndex >= 0) members[leaderIndex]!.changed = now;
    leaderIndex = index;
    if (index >= 0) members[index]!.changed = now;
  };
  const discover = (seed: number, extra = "") => `esdb+discover://127.0.0.1:${members[seed]!.port}?tls=false${extra}`;

  return {
    get connectionString() {
      return discover(0);
    },
    connectionStringVia: discover,
    nodes,
    leader: () => leaderIndex,
    moveLeader(to, moveOptions = {}) {
      const old = leaderIndex;
      const next = to ?? nextAlive(old);
      if (next < 0 || next >= size || !members[next]!.alive) throw new Error(`node ${next} cannot lead`);
      if (next === old) return;
      lead(next);
      if (old >= 0 && (moveOptions.dropSubscriptions ?? true)) nodes[old]!.dropSubscriptions(grpc.status.UNAVAILABLE);
    },
    async stopNode(index) {
      if (!members[index]!.alive) return;
      members[index]!.alive = false;
      members[index]!.changed = Date.now();
      if (index === leaderIndex) lead(nextAlive(index));
      await nodes[index]!.pause();
    },
    async startNode(index) {
      if (members[index]!.alive) return;
      await nodes[index]!.resume();
      members[index]!.alive = true;
      members[index]!.changed = Date.now();
      if (leaderIndex < 0) lead(index);
    },
    log,
    events: log.all,
    notLeaderAnswers: () => nodes.reduce((sum, node) => sum + node.notLeaderAnswers(), 0),
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
}
