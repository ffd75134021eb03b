/**
 * Two users, two devices each: Alice's PC uploads a picture and sends it to Jim.
 * Jim's PC and phone get the message; Alice's phone gets a copy (multi-device sync);
 * Alice's PC does not get its own message back. Jim's phone downloads the picture.
 *
 *   npx tsx examples/im/two-users.ts [path/to/picture.jpg]
 *
 * Environment: SWITCHBOARD_MQTT (default mqtt://127.0.0.1:1883), SWITCHBOARD_HTTP
 * (default http://127.0.0.1:8083), IM_NS (default "default", the broker's
 * im.defaultNamespace), ALICE_PASSWORD / JIM_PASSWORD (when the broker has a users file).
 * In an application, import the SDK as `switchboard/im` instead of the relative path.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import mqtt from 'mqtt';
import { decodeImPayload, encodeImPayload, ImMedia, type ImMessage } from '../../src/im/index.js';

const MQTT_URL = process.env.SWITCHBOARD_MQTT ?? 'mqtt://127.0.0.1:1883';
const HTTP_URL = process.env.SWITCHBOARD_HTTP ?? 'http://127.0.0.1:8083';
const NS = process.env.IM_NS ?? 'default';
const password = (uid: string) => process.env[`${uid.toUpperCase()}_PASSWORD`] ?? 'secret';
const inbox = (uid: string) => `/${NS}/im/u/${uid}`;

/** One device = one MQTT client with a persistent session, so nothing is lost while offline. */
async function device(uid: string, name: string) {
  const client = await mqtt.connectAsync(MQTT_URL, {
    protocolVersion: 5,
    clientId: `${uid}/${name}`,
    username: uid,
    password: password(uid),
    clean: false,
    properties: { sessionExpiryInterval: 7 * 24 * 3600 },
  });
  const got: Array<{ topic: string; msg: ImMessage }> = [];
  // No SUBSCRIBE: the broker pre-subscribed the session to the user's inbox before CONNACK.
  client.on('message', (topic, payload) => {
    const msg = decodeImPayload(payload);
    got.push({ topic, msg });
    console.log(`${uid}/${name} <- ${topic}: from ${msg.sender}: ${msg.content.con.map((c) => c.co).join(' | ')}`);
  });
  return { client, got };
}

async function upload(uid: string, file: string, type: string): Promise<{ url: string; name: string; size: number }> {
  const body = readFileSync(file);
  const res = await fetch(`${HTTP_URL}/files?name=${encodeURIComponent(basename(file))}`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${uid}:${password(uid)}`).toString('base64')}`, 'content-type': type },
    body,
  });
  if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as { url: string; name: string; size: number };
}

const picture = process.argv[2] ?? new URL('./cat.png', import.meta.url).pathname;
const alicePc = await device('alice', 'pc');
const alicePhone = await device('alice', 'phone');
const jimPc = await device('jim', 'pc');
const jimPhone = await device('jim', 'phone');

const file = await upload('alice', picture, 'image/png');
const message = encodeImPayload({
  sender: 'alice', // must be the uid Alice logged in with, or the broker refuses it (0x87)
  ts: Math.floor(Date.now() / 1000),
  kind: 0, // point-to-point
  media: ImMedia.IMAGE,
  content: { con: [{ ty: 0, co: 'look at this' }, { ty: 1, co: file.url, fn: { name: file.name, size: String(file.size) } }] },
});
await alicePc.client.publishAsync(inbox('jim'), message, { qos: 1 });

// Wait until Jim's two devices and Alice's phone have it.
const deadline = Date.now() + 5000;
while ((jimPc.got.length < 1 || jimPhone.got.length < 1 || alicePhone.got.length < 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

const image = jimPhone.got[0]?.msg.content.con.find((c) => c.ty === 1);
if (image) {
  const res = await fetch(image.co, { headers: { authorization: `Basic ${Buffer.from(`jim:${password('jim')}`).toString('base64')}` } });
  const bytes = Buffer.from(await res.arrayBuffer());
  const same = bytes.equals(readFileSync(picture));
  console.log(`jim/phone downloaded ${image.fn?.name}: ${bytes.length} bytes, ${res.headers.get('content-type')}, ${same ? 'identical' : 'DIFFERENT'}`);
}
console.log(`alice/pc got ${alicePc.got.length} message(s) back (expected 0)`);
for (const d of [alicePc, alicePhone, jimPc, jimPhone]) await d.client.endAsync();
const ok = jimPc.got.length === 1 && jimPhone.got.length === 1 && alicePhone.got.length === 1 && alicePc.got.length === 0;
console.log(ok ? 'OK' : 'FAILED');
process.exit(ok ? 0 : 1);
