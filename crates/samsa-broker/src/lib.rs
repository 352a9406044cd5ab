//! The Kafka-protocol broker: sockets, connections, one handler per API.
