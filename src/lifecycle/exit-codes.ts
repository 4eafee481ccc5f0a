/** Exit codes (sysexits.h where one fits); README "Start and stop" lists them. */
export const EXIT = { ok: 0, failure: 1, unavailable: 69, software: 70, config: 78 } as const;
