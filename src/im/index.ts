// Public API of the IM payload layer; this file becomes the client SDK entry point, so
// only what clients need is exported here (internals stay in the modules).
export {
  ImKind,
  ImMedia,
  ImItemType,
  ImPayloadError,
  IM_PAYLOAD_ERROR_CODES,
  decodeImPayload,
  encodeImPayload,
  validateImPayload,
} from './payload.js';
// Topic builders and the parser: a client needs them to address inboxes, groups and
// presence, and to tell which conversation an arriving message belongs to.
export { inboxTopic, groupTopic, presenceTopic, parseImTopic, isTopicLevelId } from './topics.js';
export type { ImTopic, ImTopicKind } from './topics.js';
export type {
  ImContent,
  ImContentItem,
  ImFileInfo,
  ImMessage,
  ImPayloadErrorCode,
} from './payload.js';
