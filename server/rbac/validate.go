package rbac

import (
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validate checks an object the way the Kubernetes API server validates
// rbac.authorization.k8s.io objects (pkg/apis/rbac/validation), so what
// tokenstore accepts is what a Kubernetes cluster accepts. Messages keep
// Kubernetes' field paths ("rules[0].verbs: Required value ...").
func validate(o *Object) field.ErrorList {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	if o.Key.Name == "" {
		errs = append(errs, field.Required(meta.Child("name"), "name or generateName is required"))
	}
	for _, msg := range content.IsPathSegmentName(o.Key.Name) {
		errs = append(errs, field.Invalid(meta.Child("name"), o.Key.Name, msg))
	}
	namespaced := !clusterScoped(o.Key.Kind)
	switch {
	case namespaced && o.Key.Namespace == "":
		errs = append(errs, field.Required(meta.Child("namespace"), ""))
	case namespaced:
		for _, msg := range content.IsDNS1123Label(o.Key.Namespace) {
			errs = append(errs, field.Invalid(meta.Child("namespace"), o.Key.Namespace, msg))
		}
	case o.Key.Namespace != "":
		errs = append(errs, field.Forbidden(meta.Child("namespace"), "not allowed on this type"))
	}
	errs = append(errs, metav1validation.ValidateLabels(o.Labels, meta.Child("labels"))...)

	if o.IsRole() {
		for i, r := range o.Rules {
			errs = append(errs, validateRule(r, namespaced, field.NewPath("rules").Index(i))...)
		}
		if o.Aggregation != nil {
			p := field.NewPath("aggregationRule", "clusterRoleSelectors")
			if len(o.Aggregation.ClusterRoleSelectors) == 0 {
				errs = append(errs, field.Required(p, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
			}
			for i := range o.Aggregation.ClusterRoleSelectors {
				errs = append(errs, metav1validation.ValidateLabelSelector(&o.Aggregation.ClusterRoleSelectors[i],
					metav1validation.LabelSelectorValidationOptions{}, p.Index(i))...)
			}
		}
		return errs
	}

	ref := field.NewPath("roleRef")
	if o.RoleRef.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(ref.Child("apiGroup"), o.RoleRef.APIGroup, []string{rbacv1.GroupName}))
	}
	if namespaced {
		if o.RoleRef.Kind != KindRole && o.RoleRef.Kind != KindClusterRole {
			errs = append(errs, field.NotSupported(ref.Child("kind"), o.RoleRef.Kind, []string{KindRole, KindClusterRole}))
		}
	} else if o.RoleRef.Kind != KindClusterRole {
		errs = append(errs, field.NotSupported(ref.Child("kind"), o.RoleRef.Kind, []string{KindClusterRole}))
	}
	if o.RoleRef.Name == "" {
		errs = append(errs, field.Required(ref.Child("name"), ""))
	}
	for _, msg := range content.IsPathSegmentName(o.RoleRef.Name) {
		errs = append(errs, field.Invalid(ref.Child("name"), o.RoleRef.Name, msg))
	}
	for i, s := range o.Subjects {
		errs = append(errs, validateSubject(s, namespaced, field.NewPath("subjects").Index(i))...)
	}
	return errs
}

// validateRule: a rule has verbs, and either resources with API groups or
// (only in a ClusterRole) non-resource URLs, never both.
func validateRule(r rbacv1.PolicyRule, namespaced bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(r.Verbs) == 0 {
		errs = append(errs, field.Required(p.Child("verbs"), "verbs must contain at least one value"))
	}
	if len(r.NonResourceURLs) > 0 {
		if namespaced {
			errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), r.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
		}
		if len(r.APIGroups) > 0 || len(r.Resources) > 0 || len(r.ResourceNames) > 0 {
			errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), r.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
		}
		return errs
	}
	if len(r.APIGroups) == 0 {
		errs = append(errs, field.Required(p.Child("apiGroups"), "resource rules must supply at least one api group"))
	}
	if len(r.Resources) == 0 {
		errs = append(errs, field.Required(p.Child("resources"), "resource rules must supply at least one resource"))
	}
	return errs
}

// validateSubject: a named User, Group or ServiceAccount; a service
// account in a ClusterRoleBinding names its namespace.
func validateSubject(s rbacv1.Subject, namespaced bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		if s.Name != "" {
			for _, msg := range content.IsDNS1123Subdomain(s.Name) {
				errs = append(errs, field.Invalid(p.Child("name"), s.Name, msg))
			}
		}
		if s.APIGroup != "" {
			errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{""}))
		}
		if !namespaced && s.Namespace == "" {
			errs = append(errs, field.Required(p.Child("namespace"), ""))
		}
	case rbacv1.UserKind, rbacv1.GroupKind:
		if s.APIGroup != rbacv1.GroupName {
			errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
	}
	return errs
}
