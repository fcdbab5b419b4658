import { receiverOptionsFromEnv, ReceiverEnvError } from '../../src/receiver/env';

describe('receiver options from the environment', () => {
  it('has defaults', () => {
    expect(receiverOptionsFromEnv({})).toEqual({
      port: 9400,
      host: '127.0.0.1',
      logdnaKeys: {},
      iamApiKeys: [],
      tokenTtlSeconds: 3600,
    });
  });

  it('reads ports, hosts, region keys and API keys', () => {
    const options = receiverOptionsFromEnv({
      RECEIVER_PORT: '0',
      RECEIVER_HOST: '0.0.0.0',
      RECEIVER_LOGDNA_KEYS: 'us-south=key1, eu-de=k=2',
      RECEIVER_IAM_API_KEYS: 'a1,,a2 ',
      RECEIVER_TOKEN_TTL_SECONDS: '60',
    });
    expect(options).toEqual({
      port: 0,
      host: '0.0.0.0',
      logdnaKeys: { 'us-south': 'key1', 'eu-de': 'k=2' },
      iamApiKeys: ['a1', 'a2'],
      tokenTtlSeconds: 60,
    });
  });

  it.each([
    [{ RECEIVER_PORT: 'eighty' }, /RECEIVER_PORT="eighty"/],
    [{ RECEIVER_PORT: '70000' }, /RECEIVER_PORT/],
    [{ RECEIVER_TOKEN_TTL_SECONDS: '0' }, /RECEIVER_TOKEN_TTL_SECONDS/],
    [{ RECEIVER_LOGDNA_KEYS: 'secret-key-without-region' }, /RECEIVER_LOGDNA_KEYS is not valid/],
    [{ RECEIVER_LOGDNA_KEYS: 'us-south=' }, /RECEIVER_LOGDNA_KEYS is not valid/],
  ])('refuses %p', (env, message) => {
    expect(() => receiverOptionsFromEnv(env)).toThrow(ReceiverEnvError);
    expect(() => receiverOptionsFromEnv(env)).toThrow(message);
  });

  it('never echoes a key in an error', () => {
    let message = '';
    try {
      receiverOptionsFromEnv({ RECEIVER_LOGDNA_KEYS: 'us-south=ok,secret-key-without-region' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/RECEIVER_LOGDNA_KEYS/);
    expect(message).not.toContain('secret-key');
  });
});
