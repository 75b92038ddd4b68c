-- The consumer's position, written in the same transaction as the record it processed: the
-- database, not the broker's group coordinator, says what has been consumed (exactly-once effect,
-- and nothing depends on the broker's consumer-group state surviving a crash).
CREATE TABLE consumer_offsets (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);
