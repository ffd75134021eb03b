// The IM SDK (src/im/payload.ts) writes payloads with Node's Buffer; in the browser every
// free `Buffer` is this one (esbuild `inject`, web/build.ts).
export { Buffer } from 'buffer';
