"""The MQTT bridge (docs/mqtt.md): bridge (connection, topics) and bridgestart (its start-up,
unloaded after it), textproto (the MQTT gateway's request and reply lines), relay (runs those
requests), points and telemetry (typed points), discovery (Home Assistant discovery of the
points, only with mqtt.discovery), config and pointsconfig (the "mqtt" section's checks).
Nothing here is imported unless the
configuration has an "mqtt" section (its checks) or mqtt.enabled is true (the rest); this file
stays empty of code so that importing one of them loads only that one.
"""
