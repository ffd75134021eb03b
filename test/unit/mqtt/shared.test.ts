import { describe, expect, it } from 'vitest';
import { isSharedFilter, parseSharedFilter, sharedInnerFilter, validSharedFilter } from '../../../src/mqtt/shared.js';

const limits = { maxTopicLength: 256, maxTopicLevels: 8 };

describe('shared subscription filters ($share/{ShareName}/{filter})', () => {
  it('[MQTT-4.8.2-1] a filter starting with $share/ is a shared subscription; anything else is not', () => {
    expect(isSharedFilter('$share/g/a')).toBe(true);
    expect(isSharedFilter('$share/')).toBe(true);
    for (const f of ['$share', '$sharegroup/a', 'a/$share/g/b', '$SYS/#', '#', 'share/g/a']) {
      expect(isSharedFilter(f)).toBe(false);
      expect(parseSharedFilter(f)).toBeNull();
    }
  });

  it('splits ShareName and filter; the filter keeps its own levels and wildcards', () => {
    expect(parseSharedFilter('$share/g/a')).toEqual({ share: 'g', filter: 'a' });
    expect(parseSharedFilter('$share/workers/jobs/+/new')).toEqual({ share: 'workers', filter: 'jobs/+/new' });
    expect(parseSharedFilter('$share/g/#')).toEqual({ share: 'g', filter: '#' });
    expect(parseSharedFilter('$share/g//')).toEqual({ share: 'g', filter: '/' });
    expect(parseSharedFilter('$share/g/$SYS/#')).toEqual({ share: 'g', filter: '$SYS/#' });
    expect(sharedInnerFilter('$share/workers/jobs/+/new')).toBe('jobs/+/new');
  });

  it('[MQTT-4.8.2-1] the ShareName is at least one character long', () => {
    expect(parseSharedFilter('$share//a')).toBe('empty_share_name');
    expect(parseSharedFilter('$share/')).toBe('empty_share_name');
  });

  it('[MQTT-4.8.2-2] the ShareName has no "+" or "#" and is followed by "/" and a Topic Filter', () => {
    expect(parseSharedFilter('$share/+/a')).toBe('bad_share_name');
    expect(parseSharedFilter('$share/#/a')).toBe('bad_share_name');
    expect(parseSharedFilter('$share/g+/a')).toBe('bad_share_name');
    expect(parseSharedFilter('$share/g')).toBe('no_filter');
    expect(parseSharedFilter('$share/g/')).toBe('no_filter');
  });

  it('validSharedFilter also checks the inner filter (wildcards, limits)', () => {
    expect(validSharedFilter('$share/g/a/+', limits)).toEqual({ share: 'g', filter: 'a/+' });
    expect(validSharedFilter('$share/g/a#', limits)).toBeNull();
    expect(validSharedFilter('$share/g/a/#/b', limits)).toBeNull();
    expect(validSharedFilter(`$share/g/${'x/'.repeat(8)}y`, limits)).toBeNull();
    expect(validSharedFilter('$share//a', limits)).toBeNull();
    expect(validSharedFilter('a/b', limits)).toBeNull();
  });
});
