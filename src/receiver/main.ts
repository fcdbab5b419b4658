/**
 * `node dist/receiver/main.js`: runs a receiver configured from the environment (see env.ts), prints one JSON
 * line with its URLs on stdout, and closes on SIGTERM / SIGINT (exit 0).
 */
import { receiverOptionsFromEnv, ReceiverEnvError } from './env';
import { startReceiver } from './receiver';

async function main(): Promise<void> {
  let options;
  try {
    options = receiverOptionsFromEnv(process.env);
  } catch (err) {
    if (err instanceof ReceiverEnvError) {
      process.stderr.write(`receiver: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const receiver = await startReceiver(options);
  const { url, logdnaUrlTemplate, cloudLogsUrlTemplate, iamTokenUrl } = receiver;
  process.stdout.write(`${JSON.stringify({ msg: 'receiver listening', url, logdnaUrlTemplate, cloudLogsUrlTemplate, iamTokenUrl })}\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    receiver.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`receiver: close failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`receiver: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
