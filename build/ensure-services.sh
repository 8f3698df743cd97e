#!/usr/bin/env bash
# Starts the local MariaDB and RabbitMQ if they are down (the machine usually starts them),
# and waits until they answer. Used by .ci/run and the demo.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 1; done
  echo "ensure-services: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

if ! port_open 3306; then
  echo "ensure-services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port MariaDB 3306
fi
if ! port_open 5672; then
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached
  wait_port RabbitMQ 5672
fi
# Debian's default of 151 connections is too few for the test tiers' parallel fleet runs (each
# controller keeps a pool per cell database); production databases run with thousands.
mysql -uroot -e 'SET GLOBAL max_connections = GREATEST(@@max_connections, 1000)'
