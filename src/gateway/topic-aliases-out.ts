/**
 * MQTT 5 Topic Aliases from the server to one client (section 3.3.2.3.4): topic -> alias,
 * at most `max` of them, the least recently used one replaced when full. One map per
 * network connection, made on its first aliased PUBLISH and gone with the connection: a
 * new connection (a resumed session's resends too) starts empty [MQTT-3.3.2-7].
 *
 * `max` is min(the client's Topic Alias Maximum, mqtt.topicAliasMaximumOut), so no alias
 * above the client's maximum is ever used [MQTT-3.1.2-26][MQTT-3.3.2-11]; the gateway keeps
 * no map at all when it is 0 [MQTT-3.1.2-27]. Aliases go 1, 2, ... max, never 0 [MQTT-3.3.2-8].
 *
 * Two steps, so the map only ever holds what the client was told: `resolve` says what the
 * next PUBLISH of a topic carries; `assign` records a new mapping once the PUBLISH that sets
 * it is written (not when it is dropped, e.g. for the client's Maximum Packet Size).
 */

/**
 * Topics shorter than this (in UTF-16 units; their UTF-8 bytes are at least as many) get no
 * alias. The Topic Alias property costs 3 bytes (identifier 0x23 and two bytes), so setting
 * an alias makes that PUBLISH 3 bytes longer and each reuse saves the topic's length minus
 * 3: from 6 bytes on, one reuse pays back the first send. Shorter topics would also take map
 * slots from long ones, for next to nothing.
 */
export const MIN_ALIASED_TOPIC_LENGTH = 6;

export class OutboundTopicAliases {
  /** Topic -> alias; Map keeps insertion order, used here as recency: the first is the LRU. */
  private readonly byTopic = new Map<string, number>();
  /** The most recently used topic: a stream on one topic skips the reordering. */
  private last: string | undefined;

  constructor(readonly max: number) {}

  get size(): number {
    return this.byTopic.size;
  }

  /**
   * > 0: the alias the client knows for `topic` (now the most recently used): send an empty
   * Topic Name with it. < 0: minus the alias a new mapping would take (the next unused one,
   * else the least recently used topic's): send the topic with it, then `assign`.
   */
  resolve(topic: string): number {
    const alias = this.byTopic.get(topic);
    if (alias !== undefined) {
      if (this.last !== topic) {
        this.byTopic.delete(topic);
        this.byTopic.set(topic, alias);
        this.last = topic;
      }
      return alias;
    }
    if (this.byTopic.size < this.max) return -(this.byTopic.size + 1);
    return -(this.byTopic.values().next().value as number);
  }

  /**
   * Records that `topic` now goes by `alias` (from resolve's negative answer, the PUBLISH
   * carrying both written): a new alias, or the least recently used topic's, which the
   * client now maps to this topic (section 3.3.2.3.4: the same alias with another topic
   * replaces the mapping). Returns whether a mapping was replaced.
   */
  assign(topic: string, alias: number): boolean {
    let replaced = false;
    if (this.byTopic.size >= this.max) {
      const [oldest, oldAlias] = this.byTopic.entries().next().value as [string, number];
      if (oldAlias !== alias) throw new Error(`topic alias ${alias} is not the least recently used one (${oldAlias})`);
      this.byTopic.delete(oldest);
      replaced = true;
    } else if (alias !== this.byTopic.size + 1) {
      throw new Error(`topic alias ${alias} is not the next unused one (${this.byTopic.size + 1})`);
    }
    this.byTopic.set(topic, alias);
    this.last = topic;
    return replaced;
  }
}
