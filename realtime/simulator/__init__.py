"""`simulate_pump`: pumps that speak MQTT exactly as the PumpStream or the original firmware would."""
