#!/bin/sh
echo "hello, this is not JSON"
