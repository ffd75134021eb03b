import { describe, it, expect } from 'vitest';
import {
  isSysTopic,
  matchTopic,
  validateTopicFilter,
  validateTopicName,
  type TopicLimits,
} from '../../../src/mqtt/topic.js';

const limits: TopicLimits = { maxTopicLength: 65535, maxTopicLevels: 128 };

describe('validateTopicName', () => {
  it('accepts ordinary names, including empty levels and `$` topics', () => {
    for (const t of ['a', 'a/b/c', '/', '/a', 'a/', '//', '$SYS/broker', 'sport/tennis player1', 'ä/€/𝄞']) {
      expect(validateTopicName(t, limits)).toBeNull();
    }
  });

  it('[MQTT-4.7.3-1] rejects an empty name', () => {
    expect(validateTopicName('', limits)).toBe('empty');
  });

  it('[MQTT-3.3.2-2] [MQTT-4.7.1-1] rejects wildcards in a name', () => {
    for (const t of ['+', '#', 'a/+', 'a/#', 'a+b', 'sport/tennis#', '+/x']) {
      expect(validateTopicName(t, limits)).toBe('wildcard_in_name');
    }
  });

  it('[MQTT-4.7.3-2] rejects U+0000', () => {
    expect(validateTopicName('a\u0000b', limits)).toBe('null_char');
    expect(validateTopicName('\u0000', limits)).toBe('null_char');
  });

  it('[MQTT-4.7.3-3] rejects names longer than 65535 UTF-8 bytes even if the limit is higher', () => {
    const big: TopicLimits = { maxTopicLength: 1_000_000, maxTopicLevels: 1_000_000 };
    expect(validateTopicName('a'.repeat(65535), big)).toBeNull();
    expect(validateTopicName('a'.repeat(65536), big)).toBe('too_long');
    // 21845 * 3 bytes = 65535: fits; one more 3-byte char does not.
    expect(validateTopicName('€'.repeat(21845), big)).toBeNull();
    expect(validateTopicName('€'.repeat(21846), big)).toBe('too_long');
  });

  it('enforces maxTopicLength in UTF-8 bytes, not UTF-16 units', () => {
    const l: TopicLimits = { maxTopicLength: 6, maxTopicLevels: 10 };
    expect(validateTopicName('abcdef', l)).toBeNull();
    expect(validateTopicName('abcdefg', l)).toBe('too_long');
    expect(validateTopicName('€€', l)).toBeNull(); // 6 bytes
    expect(validateTopicName('€€a', l)).toBe('too_long'); // 7 bytes, 3 units
    expect(validateTopicName('𝄞a', l)).toBeNull(); // 4 + 1 bytes
    expect(validateTopicName('𝄞ab', l)).toBeNull(); // 6 bytes
    expect(validateTopicName('𝄞abc', l)).toBe('too_long');
  });

  it('enforces maxTopicLevels (empty levels count)', () => {
    const l: TopicLimits = { maxTopicLength: 100, maxTopicLevels: 3 };
    expect(validateTopicName('a/b/c', l)).toBeNull();
    expect(validateTopicName('a/b/c/d', l)).toBe('too_many_levels');
    expect(validateTopicName('///', l)).toBe('too_many_levels');
    expect(validateTopicName('//', l)).toBeNull();
  });
});

describe('validateTopicFilter', () => {
  it('accepts valid filters', () => {
    for (const f of [
      'a', '#', '+', '+/+', '/+', '+/', 'a/#', 'sport/tennis/+', 'sport/+/player1',
      '+/tennis/#', '/', '//', '$SYS/#', '$share/g/x', 'a/+/#',
    ]) {
      expect(validateTopicFilter(f, limits), f).toBeNull();
    }
  });

  it('[MQTT-4.7.3-1] rejects an empty filter', () => {
    expect(validateTopicFilter('', limits)).toBe('empty');
  });

  it('[MQTT-4.7.1-2] `#` must be alone in the last level', () => {
    for (const f of ['sport/tennis#', 'sport/tennis/#/ranking', '#/a', '##', 'a/#/', 'a#', '#a', 'a/b#/c']) {
      expect(validateTopicFilter(f, limits), f).toBe('bad_wildcard');
    }
  });

  it('[MQTT-4.7.1-3] `+` must occupy an entire level', () => {
    for (const f of ['sport+', 'a/+b', 'a/b+/c', '++', '+a', 'a/++/b', 'x+/#']) {
      expect(validateTopicFilter(f, limits), f).toBe('bad_wildcard');
    }
  });

  it('[MQTT-4.7.3-2] rejects U+0000', () => {
    expect(validateTopicFilter('a/\u0000/#', limits)).toBe('null_char');
  });

  it('[MQTT-4.7.3-3] rejects filters longer than 65535 UTF-8 bytes', () => {
    const big: TopicLimits = { maxTopicLength: 1_000_000, maxTopicLevels: 1_000_000 };
    expect(validateTopicFilter('a'.repeat(65533) + '/#', big)).toBeNull();
    expect(validateTopicFilter('a'.repeat(65534) + '/#', big)).toBe('too_long');
  });

  it('enforces maxTopicLength and maxTopicLevels', () => {
    const l: TopicLimits = { maxTopicLength: 5, maxTopicLevels: 2 };
    expect(validateTopicFilter('a/#', l)).toBeNull();
    expect(validateTopicFilter('ab/cd', l)).toBeNull();
    expect(validateTopicFilter('ab/cde', l)).toBe('too_long');
    expect(validateTopicFilter('+/+/#', l)).toBe('too_many_levels');
  });

  it('treats $share filters as ordinary filters here', () => {
    expect(validateTopicFilter('$share/g/a/+', limits)).toBeNull();
    expect(validateTopicFilter('$share/g/a#', limits)).toBe('bad_wildcard');
  });
});

describe('isSysTopic', () => {
  it('is true only for topics starting with `$`', () => {
    expect(isSysTopic('$SYS/x')).toBe(true);
    expect(isSysTopic('$')).toBe(true);
    expect(isSysTopic('a/$SYS')).toBe(false);
    expect(isSysTopic('')).toBe(false);
  });
});

describe('matchTopic', () => {
  // [filter, topic, expected]
  const cases: [string, string, boolean][] = [
    // [MQTT-4.7.1-2] spec examples for `sport/tennis/player1/#`
    ['sport/tennis/player1/#', 'sport/tennis/player1', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
    ['sport/tennis/player1/#', 'sport/tennis/player2', false],
    ['sport/tennis/player1/#', 'sport/tennis', false],
    ['sport/#', 'sport', true],
    ['sport/#', 'sport/', true],
    ['#', 'sport/tennis', true],
    ['#', '/', true],
    // [MQTT-4.7.1-3] single-level wildcard examples
    ['sport/tennis/+', 'sport/tennis/player1', true],
    ['sport/tennis/+', 'sport/tennis/player2', true],
    ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['+', 'finance', true],
    ['+/tennis/#', 'sport/tennis', true],
    ['+/tennis/#', 'sport/tennis/x/y', true],
    ['sport/+/player1', 'sport/tennis/player1', true],
    ['sport/+/player1', 'sport//player1', true],
    // exact and empty-level matching
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/', false],
    ['/a', 'a', false],
    ['a//b', 'a//b', true],
    ['a/+/b', 'a//b', true],
    ['a/b/#', 'a', false],
    // case-sensitive
    ['ACCOUNTS', 'Accounts', false],
    // [MQTT-4.7.2-1] `$` topics vs leading wildcards
    ['#', '$SYS/x', false],
    ['#', '$SYS', false],
    ['+/monitor/Clients', '$SYS/monitor/Clients', false],
    ['+', '$SYS', false],
    ['$SYS/#', '$SYS/monitor/Clients', true],
    ['$SYS/#', '$SYS', true],
    ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
    ['$SYS/+/Clients', '$SYS/monitor/Clients', true],
    ['a/#', 'a/$SYS', true],
    ['+/$x', 'a/$x', true],
  ];

  it.each(cases)('[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] %s vs %s -> %s', (filter, topic, expected) => {
    expect(matchTopic(filter, topic)).toBe(expected);
  });
});
