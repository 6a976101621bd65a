// Package testenv finds and builds what tests run besides Go code: tools
// installed outside the module (moto_server, a Python with Airflow) and the
// berth command itself, so that every test that needs one finds it the
// same way and says the same thing when it is missing.
package testenv
