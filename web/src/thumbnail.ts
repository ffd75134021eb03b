/**
 * Thumbnails for pictures: a big photo is uploaded as is, plus a small JPEG that the
 * chat shows (the item's `th`, an extra member); the full picture loads when opened. A
 * phone scrolling a chat thus downloads kilobytes, not megabytes.
 */

/** Longest side of a thumbnail, in pixels (twice the CSS size, for sharp high-DPI screens). */
export const THUMB_SIZE = 480;

/**
 * Worth a thumbnail: a raster picture of some size. GIFs would lose their animation, SVGs
 * are small and scale anyway.
 */
export function needsThumbnail(mime: string, size: number): boolean {
  const t = mime.toLowerCase();
  return t.startsWith('image/') && t !== 'image/gif' && t !== 'image/svg+xml' && size > 150 * 1024;
}

/** The thumbnail's width and height for a picture of w x h (never enlarged). */
export function thumbDimensions(w: number, h: number, max = THUMB_SIZE): { width: number; height: number } {
  const scale = Math.min(1, max / Math.max(w, h));
  return { width: Math.max(1, Math.round(w * scale)), height: Math.max(1, Math.round(h * scale)) };
}

/** A JPEG thumbnail, or null when the browser cannot decode the picture. */
export async function makeThumbnail(file: Blob): Promise<Blob | null> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return null;
  }
  const { width, height } = thumbDimensions(bitmap.width, bitmap.height);
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  if (!ctx) return null;
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return new Promise((resolve) => canvas.toBlob((b) => resolve(b), 'image/jpeg', 0.8));
}
