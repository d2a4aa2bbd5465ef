"""Static checks of the deployment files: no container engine needed."""
