import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  RULE_ACTIONS,
  RuleError,
  applyRules,
  compileRules,
  parseRule,
  type RoutingRule,
  type RuleContext,
  type RuleOutcome,
} from '../../../src/im/rules.js';
import { matchTopic } from '../../../src/mqtt/topic.js';

const carbons: RoutingRule = { id: 'carbons', source: '/+/im/u/+', action: 'copy', destination: '/{1}/im/u/{sender}' };

/** Catches the RuleError thrown by `f`. */
function ruleError(f: () => unknown): RuleError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(RuleError);
    return e as RuleError;
  }
  throw new Error('expected a RuleError, nothing was thrown');
}

function apply(rules: RoutingRule[], topic: string, ctx: RuleContext = { sender: 'alice', clientId: 'alice/pc' }): RuleOutcome {
  return applyRules(compileRules(rules), topic, ctx);
}

describe('parseRule', () => {
  it('accepts and rebuilds valid rules, keeping absent keys absent', () => {
    const raw = { id: 'carbons', source: '/+/im/u/+', action: 'copy', destination: '/{1}/im/u/{sender}' };
    const r = parseRule(raw);
    expect(r).toEqual(raw);
    expect(r).not.toBe(raw);
    const drop = parseRule({ id: 'no-spam', source: '/acme/im/g/spam', action: 'drop' });
    expect(drop).toEqual({ id: 'no-spam', source: '/acme/im/g/spam', action: 'drop' });
    expect(Object.keys(drop)).toEqual(['id', 'source', 'action']);
    expect(parseRule({ id: 'a.B_9-', source: '#', action: 'move', destination: 'archive/{1}/{clientid}' }).action).toBe('move');
    expect(parseRule({ id: 'x'.repeat(64), source: 'a', action: 'copy', destination: 'b' }).id).toHaveLength(64);
    // A placeholder may be part of a level, and literal braces-free text may be anything else.
    expect(parseRule({ id: 'p', source: 'a/+/+', action: 'copy', destination: 'log/{2}-{1}/by-{sender}' }).destination).toBe('log/{2}-{1}/by-{sender}');
  });

  it('treats an undefined destination of a drop rule as absent', () => {
    expect(Object.keys(parseRule({ id: 'd', source: 'a', action: 'drop', destination: undefined }))).toEqual(['id', 'source', 'action']);
  });

  it('refuses non-objects with field ""', () => {
    for (const raw of [null, undefined, 'rule', 42, [carbons]]) {
      const e = ruleError(() => parseRule(raw));
      expect(e.field).toBe('');
    }
  });

  it('names an unknown key', () => {
    const e = ruleError(() => parseRule({ ...carbons, destinaton: 'x' }));
    expect(e.field).toBe('destinaton');
    expect(e.message).toContain('destinaton');
  });

  it('validates id', () => {
    for (const id of ['', 'x'.repeat(65), 'a b', 'a/b', 'é', 7, undefined]) {
      const e = ruleError(() => parseRule({ ...carbons, id }));
      expect(e.field).toBe('id');
      expect(e.message.startsWith('id: ')).toBe(true);
    }
    expect(ruleError(() => parseRule({ ...carbons, id: 'a b' })).message).toContain('"a b"');
  });

  it('validates source', () => {
    for (const source of ['', 'a/#/b', 'a+', 'a/b#', '$SYS/#', '$share/g/a', 'a\u0000', 3, undefined]) {
      const e = ruleError(() => parseRule({ ...carbons, source }));
      expect(e.field, String(source)).toBe('source');
    }
    expect(ruleError(() => parseRule({ ...carbons, source: 'a/#/b' })).message).toContain('"a/#/b"');
  });

  it('validates action', () => {
    for (const action of ['forward', 'COPY', '', undefined, 1]) {
      const e = ruleError(() => parseRule({ ...carbons, action }));
      expect(e.field).toBe('action');
    }
    expect(ruleError(() => parseRule({ ...carbons, action: 'forward' })).message).toContain('"forward"');
  });

  it('requires a destination for copy and move, forbids it for drop', () => {
    for (const action of ['copy', 'move']) {
      const e = ruleError(() => parseRule({ id: 'r', source: 'a', action }));
      expect(e.field).toBe('destination');
      expect(e.message).toContain(action);
    }
    const e = ruleError(() => parseRule({ id: 'r', source: 'a', action: 'drop', destination: 'b' }));
    expect(e.field).toBe('destination');
    expect(e.message).toContain('"b"');
  });

  it('validates the destination template', () => {
    const bad: [string, string, string][] = [
      ['a/+', '', 'empty'],
      ['a/+', 5 as unknown as string, 'string'],
      ['a/+', 'b/+', "'+'"],
      ['a/+', 'b/#', "'+'"],
      ['a/+', 'b\u0000', "'+'"],
      ['a/+', '$SYS/{1}', "'$'"],
      ['a/+', 'b/{2}', 'placeholder {2} but the source has only 1 wildcard'],
      ['/+/im/u/+', '/{3}', 'placeholder {3} but the source has only 2 wildcards'],
      ['a/b', 'c/{1}', 'placeholder {1} but the source has no wildcards'],
      ['a/+', 'b/{0}', 'numbered from 1'],
      ['a/+', 'b/{user}', 'unknown placeholder {user}'],
      ['a/+', 'b/{}', 'unknown placeholder {}'],
      ['a/+', 'b/{Sender}', 'unknown placeholder {Sender}'],
      ['a/+', 'b/{1', 'unterminated'],
      ['a/+', 'b/{{1}}', 'unterminated'],
      ['a/+', 'b/1}', "'}'"],
    ];
    for (const [source, destination, text] of bad) {
      const e = ruleError(() => parseRule({ id: 'r', source, action: 'copy', destination }));
      expect(e.field, destination).toBe('destination');
      expect(e.message, destination).toContain(text);
      expect(e.message.startsWith('destination: ')).toBe(true);
    }
    expect(ruleError(() => parseRule({ ...carbons, destination: '/{3}/im/u/{sender}' })).message).toBe(
      'destination: placeholder {3} but the source has only 2 wildcards',
    );
  });

  it('RULE_ACTIONS lists the actions', () => {
    expect(RULE_ACTIONS).toEqual(['copy', 'move', 'drop']);
  });
});

describe('compileRules', () => {
  it('reports its size', () => {
    expect(compileRules([]).size).toBe(0);
    expect(compileRules([carbons, { id: 'd', source: 'x', action: 'drop' }]).size).toBe(2);
  });

  it('validates the rules it is given', () => {
    expect(ruleError(() => compileRules([{ ...carbons, destination: '/{9}' }])).field).toBe('destination');
    const dup = ruleError(() => compileRules([carbons, { ...carbons }]));
    expect(dup.field).toBe('id');
    expect(dup.message).toContain('duplicate');
  });

  it('applyRules refuses something that is not a compiled table', () => {
    expect(() => applyRules({ size: 0 }, 'a', { clientId: 'c' })).toThrow(TypeError);
  });
});

describe('applyRules: figure 3 (carbons)', () => {
  const table = compileRules([carbons]);

  it("copies a message to Jim into Alice's own inbox", () => {
    expect(applyRules(table, '/acme/im/u/jim', { sender: 'alice', clientId: 'alice/pc' })).toEqual({
      deliverOriginal: true,
      copies: ['/acme/im/u/alice'],
      skipped: 0,
    });
  });

  it('makes no copy when Alice writes to her own inbox', () => {
    expect(applyRules(table, '/acme/im/u/alice', { sender: 'alice', clientId: 'alice/pc' })).toEqual({
      deliverOriginal: true,
      copies: [],
      skipped: 0,
    });
  });

  it('leaves non-matching topics alone', () => {
    for (const topic of ['/acme/im/g/dev', '/acme/im/u', '/acme/im/u/jim/x', 'acme/im/u/jim', '$SYS/im/u/x']) {
      expect(applyRules(table, topic, { sender: 'alice', clientId: 'c' }), topic).toEqual({ deliverOriginal: true, copies: [], skipped: 0 });
    }
  });

  it('skips when the publisher has no uid', () => {
    expect(applyRules(table, '/acme/im/u/jim', { clientId: 'anon' })).toEqual({ deliverOriginal: true, copies: [], skipped: 1 });
  });
});

describe('applyRules: actions', () => {
  it('move delivers to the destination instead', () => {
    expect(apply([{ id: 'm', source: 'in/+', action: 'move', destination: 'out/{1}' }], 'in/x')).toEqual({
      deliverOriginal: false,
      copies: ['out/x'],
      skipped: 0,
    });
  });

  it('a move that is skipped does not lose the message', () => {
    expect(apply([{ id: 'm', source: 'in/+', action: 'move', destination: 'out/{sender}' }], 'in/x', { clientId: 'c' })).toEqual({
      deliverOriginal: true,
      copies: [],
      skipped: 1,
    });
  });

  it('a move to the topic itself still delivers it, once', () => {
    expect(apply([{ id: 'm', source: 'in/+', action: 'move', destination: 'in/{1}' }], 'in/x')).toEqual({
      deliverOriginal: true,
      copies: [],
      skipped: 0,
    });
  });

  it('drop delivers nothing and stops evaluation', () => {
    const rules: RoutingRule[] = [
      { id: 'c1', source: '#', action: 'copy', destination: 'log/{1}' },
      { id: 'bad', source: '#', action: 'copy', destination: 'x/{sender}' },
      { id: 'd', source: 'spam/#', action: 'drop' },
      { id: 'c2', source: '#', action: 'copy', destination: 'log2/{1}' },
    ];
    expect(apply(rules, 'spam/a', { clientId: 'c' })).toEqual({ deliverOriginal: false, copies: [], skipped: 1 });
    expect(apply(rules, 'ham/a', { clientId: 'c' })).toEqual({
      deliverOriginal: true,
      copies: ['log/ham/a', 'log2/ham/a'],
      skipped: 1,
    });
  });

  it('applies every matching rule in order and de-duplicates copies', () => {
    const rules: RoutingRule[] = [
      { id: 'a', source: 'x/+', action: 'copy', destination: 'c/{1}' },
      { id: 'b', source: 'x/#', action: 'copy', destination: 'c/{1}' },
      { id: 'c', source: '+/y', action: 'copy', destination: 'd' },
      { id: 'd', source: 'x/y', action: 'move', destination: 'e' },
    ];
    expect(apply(rules, 'x/y')).toEqual({ deliverOriginal: false, copies: ['c/y', 'd', 'e'], skipped: 0 });
  });

  it('a copy after a move restores the original only if it targets it', () => {
    const rules: RoutingRule[] = [
      { id: 'm', source: 'a/+', action: 'move', destination: 'b/{1}' },
      { id: 'c', source: 'a/+', action: 'copy', destination: 'a/{1}' },
    ];
    expect(apply(rules, 'a/1')).toEqual({ deliverOriginal: true, copies: ['b/1'], skipped: 0 });
  });
});

describe('applyRules: placeholders', () => {
  it('{N}: + is one level (possibly empty), # the rest joined with / (possibly empty)', () => {
    const rules: RoutingRule[] = [{ id: 'r', source: 'a/+/#', action: 'copy', destination: 'z/{1}/{2}/end' }];
    expect(apply(rules, 'a/b/c/d').copies).toEqual(['z/b/c/d/end']);
    expect(apply(rules, 'a/b').copies).toEqual(['z/b//end']);
    expect(apply(rules, 'a//').copies).toEqual(['z///end']);
    expect(apply([{ id: 'r', source: '#', action: 'copy', destination: 'log/{1}' }], '/acme/im/u/jim').copies).toEqual([
      'log//acme/im/u/jim',
    ]);
  });

  it('{clientid} and {sender}', () => {
    const rules: RoutingRule[] = [{ id: 'r', source: 't', action: 'copy', destination: 'by/{sender}/{clientid}' }];
    expect(apply(rules, 't', { sender: 'alice', clientId: 'pc1' }).copies).toEqual(['by/alice/pc1']);
  });

  it('skips destinations that are not valid topic names', () => {
    const ctx = (sender: string | undefined, clientId: string): RuleContext => ({ sender, clientId });
    const viaSender: RoutingRule[] = [{ id: 'r', source: 't', action: 'copy', destination: 'u/{sender}' }];
    const viaClient: RoutingRule[] = [{ id: 'r', source: 't', action: 'copy', destination: 'u/{clientid}' }];
    for (const v of ['a/b', '+', '#', 'a\u0000']) {
      expect(apply(viaSender, 't', ctx(v, 'c')), v).toEqual({ deliverOriginal: true, copies: [], skipped: 1 });
      expect(apply(viaClient, 't', ctx('s', v)), v).toEqual({ deliverOriginal: true, copies: [], skipped: 1 });
    }
    // A value starting with '$' would put the copy into server topics.
    expect(apply([{ id: 'r', source: 't', action: 'copy', destination: '{clientid}/x' }], 't', ctx('s', '$SYS')).skipped).toBe(1);
    expect(apply([{ id: 'r', source: 'a/+', action: 'copy', destination: '{1}/x' }], 'a/$SYS').skipped).toBe(1);
    // An empty expansion is not a topic.
    expect(apply([{ id: 'r', source: 'a/#', action: 'copy', destination: '{1}' }], 'a').skipped).toBe(1);
    expect(apply([{ id: 'r', source: 'a/#', action: 'copy', destination: '{1}' }], 'a/b').copies).toEqual(['b']);
  });
});

describe('applyRules: MQTT matching', () => {
  it('a wildcard-led source does not match $ topics [MQTT-4.7.2-1]', () => {
    const rules: RoutingRule[] = [
      { id: 'a', source: '#', action: 'copy', destination: 'log' },
      { id: 'b', source: '+/x', action: 'drop' },
    ];
    expect(apply(rules, '$SYS/x')).toEqual({ deliverOriginal: true, copies: [], skipped: 0 });
  });

  it('# matches the parent level', () => {
    expect(apply([{ id: 'a', source: 'a/#', action: 'copy', destination: 'b' }], 'a').copies).toEqual(['b']);
  });

  // Model-based check: the outcome equals a straightforward re-statement of the rules
  // evaluated with the reference matcher.
  it('property: agrees with a reference model', () => {
    const level = fc.constantFrom('', 'a', 'b', 'im', '$x');
    const topicArb = fc.array(level, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('/'));
    const sourceArb = fc
      .tuple(fc.array(fc.constantFrom('', 'a', 'b', '+'), { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([ls, hash]) => (hash ? [...ls.slice(0, -1), '#'] : ls).join('/'));
    const ruleArb = sourceArb.chain((source) => {
      const wild = source.split('/').filter((l) => l === '+' || l === '#').length;
      const ph = fc.constantFrom('{sender}', '{clientid}', 'a', '', ...Array.from({ length: wild }, (_, i) => `{${i + 1}}`));
      const dest = fc.array(ph, { minLength: 1, maxLength: 3 }).map((ps) => ps.join('/'));
      return fc.record({
        source: fc.constant(source),
        action: fc.constantFrom(...RULE_ACTIONS),
        destination: dest,
      });
    });
    const ctxArb = fc.record({
      sender: fc.option(fc.constantFrom('alice', 'a/b', '+', '', '$s'), { nil: undefined }),
      clientId: fc.constantFrom('pc', 'x/y', '#', '$c'),
    });
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 5 }), topicArb, ctxArb, (raws, topic, ctx) => {
        const rules: RoutingRule[] = raws.map((r, i) =>
          r.action === 'drop'
            ? { id: `r${i}`, source: r.source, action: r.action }
            : { id: `r${i}`, source: r.source, action: r.action, destination: r.destination },
        );
        let valid: RoutingRule[];
        try {
          valid = rules.map(parseRule);
        } catch {
          return; // e.g. a destination starting with '{1}' that is literally '' everywhere
        }
        expect(applyRules(compileRules(valid), topic, ctx)).toEqual(model(valid, topic, ctx));
      }),
      { numRuns: 3000 },
    );
  });
});

/** The spec, restated naively: the set of topics the message is published on. */
function model(rules: RoutingRule[], topic: string, ctx: RuleContext): RuleOutcome {
  const delivered = new Set<string>([topic]);
  let skipped = 0;
  for (const r of rules) {
    if (!matchTopic(r.source, topic)) continue;
    if (r.action === 'drop') return { deliverOriginal: false, copies: [], skipped };
    const f = r.source.split('/');
    const t = topic.split('/');
    const caps: string[] = [];
    f.forEach((l, i) => {
      if (l === '+') caps.push(t[i]);
      if (l === '#') caps.push(t.slice(i).join('/'));
    });
    let bad = false;
    const dest = r.destination!.replace(/\{([a-z0-9]+)\}/g, (_m, name: string) => {
      if (name === 'sender' || name === 'clientid') {
        const v = name === 'sender' ? ctx.sender : ctx.clientId;
        if (v === undefined || /[/+#\u0000]/.test(v)) bad = true;
        return v ?? '';
      }
      return caps[Number(name) - 1];
    });
    if (bad || dest === '' || dest.startsWith('$') || /[+#\u0000]/.test(dest)) {
      skipped++;
      continue;
    }
    if (r.action === 'move') delivered.delete(topic);
    delivered.add(dest);
  }
  const copies = [...delivered].filter((d) => d !== topic);
  return { deliverOriginal: delivered.has(topic), copies, skipped };
}
