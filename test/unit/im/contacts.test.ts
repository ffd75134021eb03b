/** src/im/contacts.ts: what GET /im/contacts tells a user about the directory. */
import { describe, expect, it } from 'vitest';
import { contactsFor } from '../../../src/im/contacts.js';

const directory = [
  { uid: 'jim', groups: ['team'], topics: ['/acme/secret'] },
  { uid: 'alice', groups: ['team', 'ops'] },
  { uid: 'bob', ns: 'other' },
  { uid: 'carol', ns: 'acme' },
];

describe('contactsFor', () => {
  it('gives my namespace and groups, and the others of my namespace by uid, nothing of their entries', () => {
    expect(contactsFor('alice', directory, 'acme')).toEqual({
      uid: 'alice',
      ns: 'acme',
      groups: ['team', 'ops'],
      directory: true,
      contacts: [{ uid: 'carol' }, { uid: 'jim' }],
    });
  });
  it("uses the entry's namespace over the default", () => {
    expect(contactsFor('bob', directory, 'acme')).toEqual({ uid: 'bob', ns: 'other', groups: [], directory: true, contacts: [] });
  });
  it('a user without an entry gets the defaults (and still sees the namespace)', () => {
    expect(contactsFor('dave', directory, 'acme')).toMatchObject({ ns: 'acme', groups: [], directory: false, contacts: [{ uid: 'alice' }, { uid: 'carol' }, { uid: 'jim' }] });
    expect(contactsFor('dave', [], 'default')).toEqual({ uid: 'dave', ns: 'default', groups: [], directory: false, contacts: [] });
  });
});
