/** A request's place in the queue: `high` runs first, `low` sheds first. */
export type Priority = 'high' | 'normal' | 'low';

/** Every priority, highest first. */
export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];
