"""The studies: one module per question a notebook asks, built on the lab's harness."""
