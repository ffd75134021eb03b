/** What the service worker (web/sw.ts) and the page (media-auth.ts) say to each other. */

/** Worker to page, with a MessagePort: "which Authorization header do your media need?" */
export const ASK_AUTHORIZATION = 'switchboard:authorization?';

/** The page's answer on that port. */
export interface AuthorizationAnswer {
  authorization: string | null;
}

/** Stored files, as the broker serves them (src/im/files): only these get credentials. */
export const FILE_PATH = /^\/files\/[A-Za-z0-9_-]{22}\/[^/]+$/;
