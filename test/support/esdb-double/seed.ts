/**
 * What `$all` holds before this project writes anything: the system events a
 * fresh EventStoreDB 24.10 node writes at start-up (epoch, users, default
 * settings, stats, scavenges and their `$$` metadata) and the streams of
 * another application sharing the database. Names and event types follow the
 * server's SystemStreams / SystemEventTypes; data is abridged.
 */
import { randomUUID } from "node:crypto";
import { jsonProposed, metadataEvent, type InMemoryLog } from "./log.js";

const HOUR_MS = 3_600_000;

export function seedFreshNode(log: InMemoryLog, node: string): void {
  const json = (value: unknown) => JSON.stringify(value);
  log.write(
    "$epoch-information",
    [jsonProposed("$epoch-information", json({ epochId: randomUUID(), epochNumber: 0, epochPosition: 0, leaderInstanceId: randomUUID() }))],
    HOUR_MS,
  );
  for (const [login, fullName, groups] of [
    ["admin", "Event Store Administrator", ["$admins"]],
    ["ops", "Event Store Operations", ["$ops"]],
  ] as const) {
    log.write(`$user-${login}`, [jsonProposed("$user", json({ loginName: login, fullName, groups, disabled: false }))], HOUR_MS);
    log.write("$users", [jsonProposed("$User", json(login))], HOUR_MS);
  }
  log.write(
    "$settings",
    [
      jsonProposed(
        "update-default-acl",
        json({
          $userStreamAcl: { $r: "$all", $w: "$all", $d: "$all", $mr: "$all", $mw: "$all" },
          $systemStreamAcl: { $r: "$admins", $w: "$admins", $d: "$admins", $mr: "$admins", $mw: "$admins" },
        }),
      ),
    ],
    HOUR_MS,
  );
  writeStats(log, node, HOUR_MS);
  const scavengeId = randomUUID();
  log.write(`$$$scavenges`, [metadataEvent({ $maxAge: 2_592_000 })], HOUR_MS);
  log.write("$scavenges", [jsonProposed("$scavengeIndexInitialized", json({}))], HOUR_MS);
  log.write(
    `$scavenges-${scavengeId}`,
    [
      jsonProposed("$scavengeStarted", json({ scavengeId, nodeEndpoint: node })),
      jsonProposed("$scavengeCompleted", json({ scavengeId, nodeEndpoint: node, result: "Success", spaceSaved: 0 })),
    ],
    HOUR_MS,
  );
  writeForeignEvents(log, HOUR_MS);
}

/** One `$statsCollected` event, as a node writes every 30 s (its stream keeps a day, `$maxAge`). */
export function writeStats(log: InMemoryLog, node: string, agoMs = 0): void {
  const stream = `$stats-${node}`;
  if (!log.stream(`$$${stream}`)) log.write(`$$${stream}`, [metadataEvent({ $maxAge: 86_400 })], agoMs);
  log.write(stream, [jsonProposed("$statsCollected", JSON.stringify({ "proc-startTime": new Date().toISOString(), "sys-cpu": 3.5 }))], agoMs);
}

/**
 * Events of another application on the same database: streams whose names
 * come close to this project's (`accounts`, `accountant-7`, `$$account-…`
 * metadata is a system stream), with non-`$` event types, so only a
 * stream-name filter keeps them out.
 */
export function writeForeignEvents(log: InMemoryLog, agoMs = 0): void {
  const order = randomUUID().slice(0, 8);
  log.write(`orders-${order}`, [jsonProposed("OrderPlaced", JSON.stringify({ order, amount: 12 }))], agoMs);
  log.write("accountant-7", [jsonProposed("Deposited", JSON.stringify({ amount: "5" }))], agoMs);
  log.write("accounts", [jsonProposed("AccountOpened", JSON.stringify({ accountId: "not-ours" }))], agoMs);
}
