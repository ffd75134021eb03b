/** web/src/media.ts, format.ts, thumbnail.ts: file kinds, sizes, which links load inline, times, thumbnail sizes. */
import { describe, expect, it } from 'vitest';
import { ImItemType, ImMedia } from '../../../src/im/index.js';
import { brokerFilePath, externalLink, fileKind, formatSize, sizeOf } from '../../../web/src/media.js';
import { formatTime } from '../../../web/src/format.js';
import { needsThumbnail, thumbDimensions } from '../../../web/src/thumbnail.js';

describe('fileKind', () => {
  it('maps MIME types to the item type and the Type nibble of IM-PROTOCOL.md 3', () => {
    expect(fileKind('image/png')).toEqual({ ty: ImItemType.IMAGE, media: ImMedia.IMAGE });
    expect(fileKind('Audio/WAV')).toEqual({ ty: ImItemType.AUDIO, media: ImMedia.AUDIO });
    expect(fileKind('video/webm; codecs=vp8')).toEqual({ ty: ImItemType.VIDEO, media: ImMedia.VIDEO });
    expect(fileKind('application/pdf')).toEqual({ ty: ImItemType.DOCUMENT, media: ImMedia.PDF });
    expect(fileKind('application/vnd.openxmlformats-officedocument.wordprocessingml.document')).toEqual({ ty: ImItemType.DOCUMENT, media: ImMedia.WORD });
    expect(fileKind('text/plain')).toEqual({ ty: ImItemType.FILE, media: ImMedia.TEXT });
    expect(fileKind('')).toEqual({ ty: ImItemType.FILE, media: ImMedia.TEXT });
  });
});

describe('sizes', () => {
  it('formats bytes the way file managers do', () => {
    expect([0, 512, 1023, 1024, 2500, 48_213, 3_250_000, 5 * 1024 ** 3].map(formatSize)).toEqual(['0 B', '512 B', '1023 B', '1.0 KB', '2.4 KB', '47 KB', '3.1 MB', '5.0 GB']);
    expect(formatSize(-1)).toBe('?');
  });
  it('reads the string size of fn', () => {
    expect(sizeOf('48213')).toBe(48213);
    expect(sizeOf(48213)).toBeNaN();
    expect(sizeOf('12kb')).toBeNaN();
  });
});

describe('links', () => {
  const id = 'ZnDo3kq9ZnDo3kq9ZnDo3k';
  it("takes the path of a stored file whatever host the uploader saw", () => {
    expect(brokerFilePath(`http://127.0.0.1:8083/files/${id}/cat.jpg`)).toBe(`/files/${id}/cat.jpg`);
    expect(brokerFilePath(`https://im.example.com/files/${id}/a%20b.png?x=1`)).toBe(`/files/${id}/a%20b.png`);
    expect(brokerFilePath(`/files/${id}/cat.jpg`)).toBe(`/files/${id}/cat.jpg`);
  });
  it('refuses anything else: other paths, short ids, other schemes', () => {
    expect(brokerFilePath('https://evil.example/track.gif')).toBeNull();
    expect(brokerFilePath('http://h/files/short/cat.jpg')).toBeNull();
    expect(brokerFilePath(`http://h/files/${id}/a/b`)).toBeNull();
    expect(brokerFilePath(`javascript:/files/${id}/x`)).toBeNull();
    expect(brokerFilePath(`data:text/html,/files/${id}/x`)).toBeNull();
  });
  it('shows only http(s) links as links', () => {
    expect(externalLink('https://example.com/a')).toBe('https://example.com/a');
    expect(externalLink('javascript:alert(1)')).toBeNull();
    expect(externalLink('not a url')).toBeNull();
  });
});

describe('formatTime', () => {
  const now = new Date(2025, 10, 26, 15, 0).getTime();
  const at = (d: Date) => d.getTime() / 1000;
  it('shows the time today, the weekday this week, the date before', () => {
    expect(formatTime(at(new Date(2025, 10, 26, 9, 5)), now)).toBe('09:05');
    expect(formatTime(at(new Date(2025, 10, 24, 18, 30)), now)).toBe('Mon 18:30');
    expect(formatTime(at(new Date(2025, 9, 1, 7, 0)), now)).toBe('2025-10-01 07:00');
  });
});

describe('thumbnails', () => {
  it('are made for big raster pictures only', () => {
    expect(needsThumbnail('image/jpeg', 2_000_000)).toBe(true);
    expect(needsThumbnail('image/jpeg', 20_000)).toBe(false);
    expect(needsThumbnail('image/gif', 2_000_000)).toBe(false);
    expect(needsThumbnail('image/svg+xml', 2_000_000)).toBe(false);
    expect(needsThumbnail('video/mp4', 2_000_000)).toBe(false);
  });
  it('keep the aspect ratio and never enlarge', () => {
    expect(thumbDimensions(4000, 3000)).toEqual({ width: 480, height: 360 });
    expect(thumbDimensions(1000, 4000)).toEqual({ width: 120, height: 480 });
    expect(thumbDimensions(200, 100)).toEqual({ width: 200, height: 100 });
  });
});
