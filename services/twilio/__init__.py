"""Everything about Twilio: the REST port and adapter, TwiML, and the dial policy."""
