package controller

func (c *Controller) setupRules() error { return nil }
