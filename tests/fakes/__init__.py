"""Local stand-ins for the services sa-hygiene talks to, speaking their real protocols."""
