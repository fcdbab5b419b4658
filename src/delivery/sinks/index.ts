import type { Writable } from 'node:stream';
import type { GatewayConfig, SinkName } from '../../config';
import type { Region } from '../../types';
import type { SinkFactory } from '../delivery';
import { CloudLogsSink } from './cloud-logs-sink';
import { FileSink } from './file-sink';
import { IamTokenProvider } from './iam-token';
import { LogdnaSink } from './logdna-sink';
import type { Sink } from './sink';
import { StdoutSink } from './stdout-sink';

export interface SinkFactoryOptions {
  scrub: (text: string) => string;
  onFileError: (err: Error, attempt: number) => void;
  /** Where the stdout sink writes (tests replace process.stdout). */
  stdout?: Writable;
}

/**
 * The sinks of each region, from the configuration. Every region gets its own instance with its own endpoint
 * and credentials (data residency); the IAM token of the cloud-logs sink is shared, one API key being one
 * identity.
 */
export function createSinkFactory(config: GatewayConfig, options: SinkFactoryOptions): { create: SinkFactory; close: () => Promise<void> } {
  let tokens: IamTokenProvider | undefined;
  let file: FileSink | undefined;
  let stdout: StdoutSink | undefined;
  const create = (region: Region, name: SinkName): Sink => {
    const rc = config.regions.get(region);
    if (!rc) throw new Error(`region ${region} is not configured`);
    switch (name) {
      case 'file':
        // One journal writer for all regions (it writes <dir>/<region>/... from each batch's region); closing
        // it more than once is harmless.
        file ??= new FileSink({ dir: config.fileDir, fsync: config.fileFsync, onError: options.onFileError });
        return file;
      case 'stdout':
        stdout ??= new StdoutSink(options.stdout);
        return stdout;
      case 'logdna':
        if (!rc.logdna) throw new Error(`region ${region} has no LogDNA configuration`);
        return new LogdnaSink({
          region,
          url: rc.logdna.url,
          ingestionKey: rc.logdna.ingestionKey,
          hostname: config.logdnaHostname,
          scrub: options.scrub,
        });
      case 'cloud-logs':
        if (!rc.cloudLogsUrl || !config.cloudLogs.apiKey) throw new Error(`region ${region} has no IBM Cloud Logs configuration`);
        tokens ??= new IamTokenProvider({
          url: config.cloudLogs.iamTokenUrl,
          apiKey: config.cloudLogs.apiKey,
          timeoutMs: config.sinkTimeoutMs,
        });
        return new CloudLogsSink({
          region,
          url: rc.cloudLogsUrl,
          tokens,
          application: config.cloudLogs.application,
          subsystem: config.cloudLogs.subsystem,
          computerName: config.logdnaHostname,
          scrub: options.scrub,
        });
    }
  };
  // What the sinks share (the IAM token's connections) is released after every sink is closed.
  return { create, close: async () => tokens?.close() };
}
