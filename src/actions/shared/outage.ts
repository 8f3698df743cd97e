import { OpenStackHttpError } from '../../cinder/http';
import { RefreshFailed } from '../../errors';

/**
 * A fleet stops starting new work once Cinder (or Keystone) could not be reached at all, its
 * connect retries spent: every BDM left would wait the same retries and fail the same way (1,000
 * BDMs, half an hour). The ones in flight finish and clean up; the rest are listed as not
 * started, with why, for a re-run once the service is back.
 */
export class Outage {
  why?: string;

  /** Remembers the first failure that says a shared service is unreachable. */
  note(err: unknown): void {
    if (this.why) return;
    for (let e: unknown = err; e instanceof Error; e = e instanceof RefreshFailed ? e.causeError : undefined) {
      if (e instanceof OpenStackHttpError && e.status === null) {
        this.why = e.message.split('\n')[0]!;
        return;
      }
    }
  }
}
