/**
 * What a user may learn from the directory (GET /im/contacts): their own namespace and
 * groups, and who else is in that namespace. Others' groups and extra topics stay with
 * the admin API: a user sees no more than the presence topics of the namespace (which
 * every user of it may read) already tell, plus the names of people who never connected.
 *
 * Pure: the HTTP side (contacts-http.ts) fetches the directory and authenticates.
 */
import type { DirectoryEntry } from './presub.js';

export interface Contacts {
  uid: string;
  ns: string;
  groups: string[];
  /** true when the user has a directory entry; false = the broker's defaults (a client with a JWT may know better from its claims). */
  directory: boolean;
  /** Everyone else with a directory entry in the namespace, sorted by uid. */
  contacts: Array<{ uid: string }>;
}

export function contactsFor(uid: string, directory: readonly DirectoryEntry[], defaultNamespace: string): Contacts {
  const me = directory.find((e) => e.uid === uid);
  const ns = me?.ns ?? defaultNamespace;
  const contacts = directory
    .filter((e) => e.uid !== uid && (e.ns ?? defaultNamespace) === ns)
    .map((e) => ({ uid: e.uid }))
    .sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
  return { uid, ns, groups: [...(me?.groups ?? [])], directory: me !== undefined, contacts };
}
