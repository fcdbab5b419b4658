export { defaultRegion, loadConfig, resolveUpstream } from './config';
export type { ClientLimits, GatewayConfig, RegionConfig, SinkName, SpoolFullPolicy, UpstreamTarget } from './config';
export { ConfigProblems, describeSettings, loadSettings, readSettings, regionEnvSuffix, settingsEnv } from './settings';
export type { RawSettings } from './settings';
