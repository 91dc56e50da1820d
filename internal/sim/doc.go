// Package sim is Pluto's deterministic simulation, in the style of
// FoundationDB's simulator and TigerBeetle's VOPR: the real engine
// (internal/engine) runs on testing/synctest's fake clock over a
// fault-injecting wrapper (internal/store/faultstore) around the real
// SQLite store, with simulated workers that crash, freeze, reconnect,
// share ids, refuse cancels and send garbage, and random clients that
// submit, cancel, retry and drive cron jobs, while the server restarts.
// A seed decides everything the simulation does; after a fault phase and
// a quiet phase, invariants are checked and every failure names its seed
// and a one-line replay command.
//
// Run it with make sim (300 seeds), make sim SEEDS=100000, or replay one
// with make sim SEED=n. docs/simulation.md describes the model, the
// invariants and what the simulation found.
package sim
