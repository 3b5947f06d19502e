// Package objtest is the conformance suite of Strata's object-store seam:
// every backend (tiering/filestore, tiering/s3store, any future one) runs
// Run from its tests, so all of them provide the semantics documented in
// tiering/objstore and relied on by the tiering manager.
//
// Run declares its parameter with objstore.Store, which is the very type
// tiering.ObjectStore aliases; importing the leaf package keeps the suite
// usable while package tiering itself is being changed.
//
// Each subtest asks newStore for a store of its own (a fresh directory, or a
// fresh prefix in a shared bucket), so subtests may run in parallel and never
// see each other's keys.
package objtest
