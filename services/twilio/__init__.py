"""Twilio: the port callrelay needs, its REST adapter over twilio-python, and the TwiML."""
