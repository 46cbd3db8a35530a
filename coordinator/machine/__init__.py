"""What this machine is and can do: host facts, accelerated precisions, measured peaks."""
