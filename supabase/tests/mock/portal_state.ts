/** In-memory portal state: the Dataverse contacts the mock knows and their visibility. */

import { isGuid } from "./odata_filter.ts";

export interface ContactState {
  visible: boolean;
  /** Row version, the number in `@odata.etag` (`W/"<version>"`); bumped by every PATCH. */
  version: number;
}

export interface ContactRecord extends ContactState {
  id: string;
}

/** Lower-cases a contact id; throws when it is not a GUID. */
export function normalizeContactId(id: string): string {
  if (!isGuid(id)) throw new Error(`contact id must be a GUID, got ${JSON.stringify(id)}`);
  return id.toLowerCase();
}

export class PortalState {
  #contacts = new Map<string, ContactState>();

  /** Adds (or replaces) a contact. */
  add(id: string, visible = false): void {
    this.#contacts.set(normalizeContactId(id), { visible, version: 1 });
  }

  remove(id: string): boolean {
    return this.#contacts.delete(normalizeContactId(id));
  }

  clear(): void {
    this.#contacts.clear();
  }

  get(id: string): ContactState | undefined {
    const c = this.#contacts.get(id.toLowerCase());
    return c && { ...c };
  }

  /** Sets visibility of an existing contact; false when it does not exist (never creates). */
  setVisible(id: string, visible: boolean): ContactState | undefined {
    const c = this.#contacts.get(id.toLowerCase());
    if (!c) return undefined;
    c.visible = visible;
    c.version++;
    return { ...c };
  }

  /** All contacts ordered by id, as Dataverse orders by primary key by default. */
  list(): ContactRecord[] {
    return [...this.#contacts.entries()]
      .map(([id, c]) => ({ id, ...c }))
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  get size(): number {
    return this.#contacts.size;
  }
}

/** Deterministic demo ids: `00000000-0000-4000-8000-<12 hex digits of n>`. */
export function demoContactId(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}
