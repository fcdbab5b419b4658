/** What a benchmark run measured (bench/results.json), and the targets it is judged by. */
import type { ProfileSummary } from './profile';
import type { SystemId } from './systems';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  date: string;
  tools: Record<string, string>;
}

export interface Settings {
  mode: 'quick' | 'full';
  rounds: number;
  closedSeconds: number;
  closedWarmupSeconds: number;
  openSeconds: number;
  openWarmupSeconds: number;
  loader: 'wrk' | 'autocannon';
  streamBytes: number;
  drainEvents: number;
  backlogSeconds: number;
  backlogRate: number;
  catchupSeconds: number;
  /** Longest wait, before each measurement, for other processes to leave the machine alone. */
  quietWaitSeconds: number;
  profile: boolean;
}

export interface Resources {
  /** CPU time of the system's processes during the measurement, ms. */
  cpuMs: number;
  wallMs: number;
  /** Highest RSS sampled during the measurement (every 100 ms), KB. */
  maxRssKb: number;
  /** CPU used meanwhile by processes outside the benchmark (another build or test run on the machine), cores. */
  foreignCores: number;
}

export interface ClosedRun extends Resources {
  system: SystemId;
  round: number;
  requests: number;
  rps: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ClosedScenario {
  id: string;
  title: string;
  path: string;
  bodyBytes: number;
  connections: number;
  runs: ClosedRun[];
}

export interface OpenRun extends Resources {
  system: SystemId;
  round: number;
  scheduled: number;
  completed: number;
  errors: number;
  unfinished: number;
  achievedRate: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  sendLagP99Ms: number;
  serviceP50Ms: number;
  serviceP99Ms: number;
}

export interface OpenScenario {
  id: string;
  rate: number;
  path: string;
  runs: OpenRun[];
}

export interface StreamRun {
  system: SystemId;
  round: number;
  direction: 'download' | 'upload';
  seconds: number;
  mbPerSecond: number;
  ok: boolean;
  error?: string;
  /** VmHWM of the system's process after this transfer (KB); gateway only. */
  hwmAfterKb?: number;
}

export interface StreamScenario {
  bytes: number;
  runs: StreamRun[];
  /** The gateway used here was started fresh for this scenario and warmed with small calls. */
  gatewayHwmBeforeKb: number;
  gatewayHwmAfterKb: number;
  gatewayRssBeforeKb: number;
}

export interface LatencyWindow {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface EventsScenario {
  drain: {
    events: number;
    /** Calls per second while the receiver was down: each call's event spooled with fsync (and journaled). */
    recordRate: number;
    /** Events per second from the first delivery request to the last (delivery alone). */
    steadyRate: number;
    /** Events per second from the moment the receiver came back (includes the gateway's retry wait). */
    fromUpRate: number;
    drainMs: number;
    retryWaitMs: number;
  };
  live: {
    events: number;
    callsPerSecond: number;
    /** From the first call until the receiver had every event. */
    deliveredAfterMs: number;
    rate: number;
  };
  backlog: {
    seconds: number;
    rate: number;
    events: number;
    /** From the receiver coming back until it had the whole backlog; -1 when not within the measurement. */
    catchUpMs: number;
    catchUpRate: number;
    /** Open-loop latency at `liveRate` through the gateway: before the receiver came back, while the backlog
     * was delivered, after, and the whole run. */
    liveRate: number;
    before: LatencyWindow;
    during: LatencyWindow;
    after: LatencyWindow;
    whole: LatencyWindow;
    errors: number;
  };
}

export interface Target {
  id: string;
  text: string;
  measured: string;
  value: number;
  limit: number;
  pass: boolean;
}

export interface LatencySummary {
  n: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/** What a durable write of one event costs on this disk, nothing else running (bench/durable-floor.ts). */
export interface DurableFloor {
  rate: number;
  seconds: number;
  eventBytes: number;
  /** One O_DSYNC pwrite at a time into a zero-filled file. */
  device: LatencySummary;
  /** RegionSpool.append, as the gateway spools an event. */
  spool: LatencySummary;
}

/**
 * What the audit chain and checkpoints cost: the gateway against the same gateway without them
 * (bench/gateway-unchained.ts), closed loop on 1 KB at 64 connections, alternating.
 */
export interface IntegrityCost {
  connections: number;
  runs: ClosedRun[];
}

export interface Results {
  machine: Machine;
  command: string;
  /** The commit the gateway was built from, and the files of src/ and schemas/ that differed from it. */
  source?: { commit: string; uncommitted: string[] };
  settings: Settings;
  notes: string[];
  systems: SystemId[];
  upstream: { bytes1k: number; bytes64k: number };
  gatewayEnv: Record<string, string>;
  closed: ClosedScenario[];
  open: OpenScenario[];
  stream: StreamScenario | undefined;
  events: EventsScenario | undefined;
  /** Absent in results of runs made before it was measured. */
  durableFloor?: DurableFloor | undefined;
  /** Absent in results of runs made before it was measured. */
  integrity?: IntegrityCost | undefined;
  /** The main gateway's VmHWM after the throughput and latency scenarios, KB. */
  gatewayHwmAfterLoadKb: number;
  targets: Target[];
  profile: { command: string; seconds: number; rps: number; summary: ProfileSummary } | undefined;
  elapsedSeconds: number;
}
