import type { Region } from '../types';

const SEGMENT_UNSAFE = /[^A-Za-z0-9._-]/g;

/** CRN segments are ':'-separated, so anything taken from a request is reduced to safe characters. */
function segment(value: string | undefined): string {
  return value ? value.replace(SEGMENT_UNSAFE, '').slice(0, 128) : '';
}

/**
 * The project CRN, `crn:v1:bluemix:public:codeengine:<region>:a/<account>:<project>::`, which auditors filter
 * on as target.id. With no project (listing projects) the service-instance segment is empty; with no known
 * account the scope segment is empty.
 */
export function projectCrn(service: string, region: Region, accountId: string | undefined, projectId: string | undefined): string {
  const account = segment(accountId);
  const scope = account ? `a/${account}` : '';
  return `crn:v1:bluemix:public:${service}:${region}:${scope}:${segment(projectId)}::`;
}
