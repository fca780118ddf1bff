// Fault injection state, consulted by the broker and by fleet provisioning.
import type { FaultStep, Faults } from './control-plane.ts';

export class FaultState {
  #faults: Faults = {};

  set(faults: Faults): void {
    this.#faults = { ...faults };
  }

  get current(): Readonly<Faults> {
    return this.#faults;
  }

  /** Consumes one throttled request if any are left. */
  takeThrottle(): boolean {
    const left = this.#faults.throttle ?? 0;
    if (left <= 0) return false;
    this.#faults.throttle = left - 1;
    return true;
  }

  /** True once for the configured step: the connection is then dropped. */
  takeDrop(step: FaultStep): boolean {
    if (this.#faults.dropAfter !== step) return false;
    delete this.#faults.dropAfter;
    return true;
  }
}
