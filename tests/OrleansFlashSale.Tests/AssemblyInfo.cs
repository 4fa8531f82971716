// Collections share two cores with real Redis, MariaDB and NATS: running them one at a time keeps fault tests
// (which stop services and silos) from disturbing each other.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
