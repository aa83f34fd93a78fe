variable "stage" {
  description = "Deployment stage (dev, prod, ...): the Zappa web stage of the same name, its executor stage <stage>_executor."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,15}$", var.stage))
    error_message = "stage must be 1-16 lowercase letters or digits, starting with a letter (Zappa derives function names from it)."
  }
}

variable "region" {
  description = "AWS region of every resource; the Zappa stages must use the same one."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "First part of every name (<name_prefix>-<stage>-...). Must equal Zappa's project_name, because the function names the roles are scoped to are derived from it."
  type        = string
  default     = "task-scheduler"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and hyphens, 2-32 characters."
  }
}

variable "deletion_protection" {
  description = "DynamoDB deletion protection. null means: on for the prod stage, off elsewhere."
  type        = bool
  default     = null
}

variable "log_retention_days" {
  description = "How long CloudWatch Logs keeps the functions' logs."
  type        = number
  default     = 30
}

variable "alarm_actions" {
  description = "ARNs (e.g. SNS topics) notified when the scheduler's dead-letter queue holds messages."
  type        = list(string)
  default     = []
}
