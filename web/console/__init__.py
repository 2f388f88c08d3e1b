"""The web console for the people who run callrelay: server-rendered pages behind a sign-in."""
