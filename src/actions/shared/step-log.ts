/** Named steps with their wall time, so a result shows what ran and where the time went. */
export interface StepEntry {
  step: string;
  ms: number;
  ok: boolean;
}

export class StepLog {
  readonly entries: StepEntry[] = [];
  failedStep?: string;

  async run<T>(step: string, work: () => Promise<T>): Promise<T> {
    // Crash-safety tests kill the process right before a chosen step (a "failpoint").
    if (process.env.NOVA_BDM_KILL_BEFORE_STEP === step) process.kill(process.pid, 'SIGKILL');
    const started = performance.now();
    try {
      const value = await work();
      this.entries.push({ step, ms: Math.round(performance.now() - started), ok: true });
      return value;
    } catch (err) {
      this.entries.push({ step, ms: Math.round(performance.now() - started), ok: false });
      this.failedStep ??= step;
      throw err;
    }
  }
}
