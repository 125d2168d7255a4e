"""Deploy-time declarations: the supporting resources' CloudFormation template and its deployer."""
