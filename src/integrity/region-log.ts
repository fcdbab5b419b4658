/**
 * One region's audit log: the chain and the checkpoints of the events appended to its spool. The spool is the
 * single ordered place where events become durable, and one gateway process is its only writer, so the spool's
 * append order is the log's order: each event gets the next sequence number and the previous hash here,
 * synchronously, in the same call that queues it for the spool.
 *
 * It also keeps what the log's state is once the spool has made events durable (the spool tells it after each
 * group commit), saves that before the spool deletes delivered segments, and writes the checkpoints: every
 * AUDIT_CHECKPOINT_INTERVAL_MS while events arrive, at least hourly while idle, at start-up when the last run
 * ended without one (a crash), and at shutdown.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { MAX_PAYLOAD_BYTES } from '../spool/record-codec';
import type { SpoolEntry, SpoolPosition } from '../spool/types';
import type { Region, Severity } from '../types';
import { memberSplice } from './canonical-json';
import { hashedMember, MAX_LOG_ID_LENGTH, unhashedMember } from './chain-block';
import { EMPTY_POINT, recoverChain, type RecordSource } from './chain-recovery';
import { buildCheckpointEvent, type CheckpointReason, type Predecessor } from './checkpoint-event';
import { readLogState, writeLogState, type ChainPoint, type LogState } from './log-state';
import { leafHash64 } from './merkle';
import { formatCheckpointBody, formatNote } from './note';
import type { SigningKey } from './signing-key';

export const DEFAULT_IDLE_CHECKPOINT_MS = 3_600_000;

export interface IntegrityOptions {
  /** AUDIT_CHECKPOINT_INTERVAL_MS: how often a checkpoint is written while events arrive. */
  checkpointIntervalMs: number;
  /** Longest time without a checkpoint while idle (default one hour). */
  idleCheckpointMs?: number;
  /** AUDIT_SIGNING_KEY_FILE; without one, checkpoints are written unsigned. */
  signingKey: SigningKey | undefined;
  /** Names this writer in new log ids (default: the host name, which is the pod's name in Kubernetes). */
  instance?: string;
  /** For the checkpoint events' CRNs (CE_ACCOUNT_ID). */
  accountId: string | undefined;
}

/** What the log needs of its region's spool (a RegionSpool). */
export interface LogSpool extends RecordSource {
  append(entry: SpoolEntry): Promise<void>;
  readonly endPosition: SpoolPosition;
  /** Records made durable since the spool was opened. */
  readonly committedRecords: number;
  onDurable(listener: () => void): () => void;
}

/** An event to append: its canonical JSON without the integrity block, and where the block goes (memberSlot). */
export interface UnchainedEvent {
  json: string;
  slot: number;
  timestampMs: number;
  severity: Severity;
}

export interface RegionLogOptions extends IntegrityOptions {
  region: Region;
  spool: LogSpool;
  /** The region's spool directory, where the chain state is kept. */
  dir: string;
  fsync: boolean;
  logger: Logger;
  /** Tests. */
  now?: () => number;
}

function sanitizeInstance(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 100) || 'gateway';
}

export function newLogId(region: Region, instance: string, startMs: number): string {
  return `ce-audit-gateway/${region}/${sanitizeInstance(instance)}/${startMs}`.slice(0, MAX_LOG_ID_LENGTH);
}

export class RegionLog {
  /** After the newest event handed to the spool. */
  private next: ChainPoint;
  /** After the newest event the spool has made durable, and where the records after it start. */
  private durable: ChainPoint & { position: SpoolPosition };
  /** The chain after each event handed to the spool and not yet durable, in order. */
  private readonly pending: ChainPoint[] = [];
  private committedSeen: number;
  private readonly logJson: string;
  private readonly clock: () => number;
  private readonly startedAt: number;
  private timer: NodeJS.Timeout | undefined;
  private checkpointing: Promise<void> | undefined;
  private closed = false;
  private finished: Promise<void> | undefined;
  private saving: Promise<void> = Promise.resolve();
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly o: RegionLogOptions,
    readonly log: string,
    point: ChainPoint,
  ) {
    this.clock = o.now ?? Date.now;
    this.startedAt = this.clock();
    this.logJson = JSON.stringify(log);
    this.next = point;
    this.durable = { ...point, position: o.spool.endPosition };
    this.committedSeen = o.spool.committedRecords;
    this.unsubscribe = o.spool.onDurable(() => this.onDurable());
  }

  /**
   * Resumes the region's log from its saved state and the spool's records (or starts a new one), saves where it
   * stands, writes the checkpoint the start calls for, and starts the checkpoint timer.
   */
  static async open(o: RegionLogOptions): Promise<RegionLog> {
    let state: LogState | undefined;
    let stateProblem: string | undefined;
    try {
      state = await readLogState(o.dir);
    } catch (err) {
      stateProblem = (err as Error).message;
    }
    const recovery = await recoverChain(o.spool, state, stateProblem);
    const now = (o.now ?? Date.now)();
    let log: RegionLog;
    let predecessor: Predecessor | undefined;
    if (recovery.kind === 'continue') {
      log = new RegionLog(o, recovery.log, recovery.point);
      if (recovery.replayed > 0)
        o.logger.info({ region: o.region, log: recovery.log, replayed: recovery.replayed }, 'audit log resumed from the spool');
    } else {
      log = new RegionLog(o, newLogId(o.region, o.instance ?? hostname(), now), EMPTY_POINT);
      predecessor = recovery.predecessor;
      if (state || stateProblem || predecessor) {
        o.logger.warn({ region: o.region, log: log.log, predecessor, reason: recovery.why }, 'audit log: a new log starts');
      }
    }
    await log.save();
    if (predecessor) await log.checkpoint('start', predecessor);
    else if (log.hasUncovered()) await log.checkpoint('recovered');
    log.startTimer();
    return log;
  }

  /** Chains the event and hands it to the spool; resolves once it is durable. */
  append(event: UnchainedEvent): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`the audit log of ${this.o.region} is closed`));
    let json: string;
    try {
      json = this.chain(event.json, event.slot, undefined);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.o.spool.append({ timestampMs: event.timestampMs, severity: event.severity, json });
  }

  /** Events after the newest checkpoint (the last run ended without one, or events arrived since). */
  hasUncovered(): boolean {
    const newest = this.next.size - 1;
    return newest >= 0 && this.next.lastCheckpoint?.seq !== newest;
  }

  /** Appends a checkpoint of everything so far; one at a time (a call while one is written waits for it). */
  checkpoint(reason: CheckpointReason, predecessor?: Predecessor): Promise<void> {
    if (this.checkpointing) return this.checkpointing;
    const run = this.writeCheckpoint(reason, predecessor).finally(() => {
      this.checkpointing = undefined;
    });
    this.checkpointing = run;
    return run;
  }

  /** The shutdown checkpoint: covers every event so far (nothing when the newest event is a checkpoint already). */
  async seal(): Promise<void> {
    if (this.checkpointing) await this.checkpointing.catch(() => undefined);
    while (this.hasUncovered()) await this.checkpoint('shutdown');
  }

  /**
   * Stops the timer, refuses appends from now on, and queues the shutdown checkpoint when events are uncovered. The
   * promise settles once that checkpoint is durable, or once the spool's close() gives it up (a failing disk): it
   * never waits on the disk by itself, so a shutdown cannot hang here.
   */
  finish(): Promise<void> {
    if (!this.finished) {
      this.stopTimer();
      this.finished = this.hasUncovered() ? this.appendCheckpoint('shutdown', undefined) : Promise.resolve();
      this.closed = true;
    }
    return this.finished;
  }

  /** Finishes the log and saves its state (after the spool's close() when the spool may be failing: see finish()). */
  async close(): Promise<void> {
    try {
      await this.finish();
    } catch (err) {
      this.o.logger.error(
        { region: this.o.region, err: { message: (err as Error).message } },
        'audit log: the shutdown checkpoint was not written',
      );
    }
    this.unsubscribe();
    await this.save();
  }

  /** Saves the durable state (the spool calls this before deleting segments). Saves run one after another. */
  save(): Promise<void> {
    const run = this.saving.then(() => writeLogState(this.o.dir, { log: this.log, ...this.durable }, this.o.fsync));
    this.saving = run.catch(() => undefined);
    return run;
  }

  /** Where the chain stands (for tests and diagnostics). */
  get state(): { log: string; size: number; durableSize: number; lastCheckpoint: ChainPoint['lastCheckpoint'] } {
    return { log: this.log, size: this.next.size, durableSize: this.durable.size, lastCheckpoint: this.next.lastCheckpoint };
  }

  /**
   * The event with its integrity block: one splice of the canonical JSON, one SHA-256. The chain moves on before
   * the spool has the event; the spool keeps appends in order and the durable state follows its commits.
   */
  private chain(json: string, slot: number, checkpointAt: number | undefined): string {
    const { head, tail } = memberSplice(json, slot);
    const seq = this.next.size;
    const prev = this.next.lastHash;
    const hash = leafHash64(head + unhashedMember(this.logJson, seq, prev) + tail);
    const out = head + hashedMember(this.logJson, seq, prev, hash) + tail;
    if (out.length * 3 > MAX_PAYLOAD_BYTES && Buffer.byteLength(out) > MAX_PAYLOAD_BYTES) {
      throw new Error(`event of ${Buffer.byteLength(out)} bytes exceeds the spool's limit of ${MAX_PAYLOAD_BYTES}`);
    }
    this.next = {
      size: seq + 1,
      lastHash: hash,
      frontier: this.next.frontier.append(hash),
      lastCheckpoint: checkpointAt === undefined ? this.next.lastCheckpoint : { seq, hash, atMs: checkpointAt },
    };
    this.pending.push(this.next);
    return out;
  }

  private onDurable(): void {
    const committed = this.o.spool.committedRecords;
    const n = Math.min(committed - this.committedSeen, this.pending.length);
    this.committedSeen = committed;
    if (n <= 0) return;
    const last = this.pending[n - 1] as ChainPoint;
    // Released at once: entries kept past their commit would survive young-generation collections for nothing.
    this.pending.splice(0, n);
    this.durable = { ...last, position: this.o.spool.endPosition };
  }

  private async writeCheckpoint(reason: CheckpointReason, predecessor: Predecessor | undefined): Promise<void> {
    await this.appendCheckpoint(reason, predecessor);
    this.o.logger.debug({ region: this.o.region, log: this.log, size: this.state.size - 1, reason }, 'audit checkpoint written');
    await this.save();
  }

  /** Chains a checkpoint of every event so far (synchronously) and hands it to the spool. */
  private appendCheckpoint(reason: CheckpointReason, predecessor: Predecessor | undefined): Promise<void> {
    const at = this.clock();
    const { size, frontier, lastCheckpoint } = this.next;
    const root = frontier.root();
    const body = formatCheckpointBody({ origin: this.log, size, root });
    const note = this.o.signingKey ? this.o.signingKey.signNote(body) : formatNote(body, []);
    const { json, slot } = buildCheckpointEvent({
      region: this.o.region,
      accountId: this.o.accountId,
      instance: this.o.instance ?? hostname(),
      log: this.log,
      atMs: at,
      fields: {
        frontier: frontier.hashes64(),
        lastProof: frontier.lastLeafProof64() ?? [],
        note,
        predecessor,
        previous: lastCheckpoint ? { hash: lastCheckpoint.hash, seq: lastCheckpoint.seq } : null,
        reason,
        root: root.toString('base64'),
        size,
      },
    });
    return this.o.spool.append({ timestampMs: at, severity: 'normal', json: this.chain(json, slot, at) });
  }

  private startTimer(): void {
    const idleMs = this.o.idleCheckpointMs ?? DEFAULT_IDLE_CHECKPOINT_MS;
    this.timer = setInterval(
      () => {
        if (this.closed || this.checkpointing) return;
        const since = this.next.lastCheckpoint?.atMs ?? this.startedAt;
        const reason: CheckpointReason | undefined = this.hasUncovered() ? 'interval' : this.clock() - since >= idleMs ? 'idle' : undefined;
        if (!reason) return;
        this.checkpoint(reason).catch((err: unknown) =>
          this.o.logger.error({ region: this.o.region, err: { message: (err as Error).message } }, 'audit checkpoint failed'),
        );
      },
      Math.min(this.o.checkpointIntervalMs, idleMs),
    );
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
