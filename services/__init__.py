"""callrelay's domain, its use cases, and the adapters to the store and to Twilio."""
