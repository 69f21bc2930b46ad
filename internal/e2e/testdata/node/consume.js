// A consumer of the message-history topics written with ordinary non-Go
// Kafka and Avro libraries (kafkajs, @kafkajs/confluent-schema-registry):
// it reads the given topics from the beginning, decodes every record
// through the schema registry, and prints one JSON line per record.
//
// Usage: node consume.js BROKER REGISTRY_URL COUNT TOPIC...
'use strict';
const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs');
const { SchemaRegistry } = require('@kafkajs/confluent-schema-registry');
const SnappyCodec = require('kafkajs-snappy');

// franz-go (the project's Kafka client) compresses batches with snappy by
// default; kafkajs needs the codec registered to read them.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;

async function main() {
  const [broker, registryURL, countArg, ...topics] = process.argv.slice(2);
  const want = parseInt(countArg, 10);
  const kafka = new Kafka({ clientId: 'history-node', brokers: [broker], logLevel: logLevel.ERROR });
  const registry = new SchemaRegistry({ host: registryURL });
  const consumer = kafka.consumer({ groupId: 'history-node-' + Date.now() });
  await consumer.connect();
  for (const topic of topics) {
    await consumer.subscribe({ topic, fromBeginning: true });
  }
  let seen = 0;
  const done = new Promise((resolve, reject) => {
    consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        try {
          const value = await registry.decode(message.value);
          process.stdout.write(JSON.stringify({
            topic, partition, offset: message.offset,
            key: message.key ? message.key.toString() : null,
            schema_id: message.value.readUInt32BE(1),
            value,
          }, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
          seen++;
          if (seen >= want) resolve();
        } catch (err) {
          reject(err);
        }
      },
    }).catch(reject);
  });
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out with ${seen} of ${want} records`)), 60000));
  try {
    await Promise.race([done, timeout]);
  } finally {
    await consumer.disconnect();
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
